"""Initial schema: LCS jobs and results, task completions, documents and word-count jobs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lcs_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("a", sa.Text(), nullable=False),
        sa.Column("b", sa.Text(), nullable=False),
        sa.Column("a_length", sa.Integer(), nullable=False),
        sa.Column("b_length", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("delivered_via", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_lcs_jobs_status", "lcs_jobs", ["status"])
    op.create_index("ix_lcs_jobs_created_at", "lcs_jobs", ["created_at"])
    op.create_table(
        "lcs_results",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("lcs_jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("substring", sa.Text(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("compute_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "task_completions",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("starts", sa.Integer(), nullable=False),
        sa.Column("executions", sa.Integer(), nullable=False),
        sa.Column("first_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_completed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_table(
        "word_count_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("document_count", sa.Integer(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_words", sa.Integer(), nullable=True),
        sa.Column("top_words", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("word_count_jobs")
    op.drop_table("documents")
    op.drop_table("task_completions")
    op.drop_table("lcs_results")
    op.drop_index("ix_lcs_jobs_created_at", table_name="lcs_jobs")
    op.drop_index("ix_lcs_jobs_status", table_name="lcs_jobs")
    op.drop_table("lcs_jobs")
