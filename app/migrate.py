"""``python -m app.migrate``: create or upgrade the database schema to the newest revision.

Owns: running alembic against DATABASE_URL, serialised across processes. Several pods (the web
Deployment's initContainers, workers starting at once) may run it together: on PostgreSQL they
queue on one advisory lock, and each one that gets it finds the schema either already current
(and does nothing) or upgrades it. Exit status 0 means "schema is current".

Does not own: the table definitions (``app.db``) or the revisions (``app/migrations/versions``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from app.settings import AppSettings, SettingsError

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit number shared by every process of this application; the value spells
# "hacelery" in ASCII so it is recognisable in pg_locks.
ADVISORY_LOCK_ID = 0x68616365_6C657279 - 2**63

log = logging.getLogger("app.migrate")


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config without an ini file: the script location is inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "app/migrations/versions holds no revision"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(sqlalchemy_url: str) -> tuple[str | None, str]:
    """Upgrade to head under the advisory lock; returns (revision before, revision after)."""
    engine = create_engine(sqlalchemy_url)
    try:
        with engine.connect() as connection:
            is_postgresql = connection.dialect.name == "postgresql"
            if is_postgresql:
                # Session-level lock, held across alembic's own transactions; released below or
                # by PostgreSQL when this connection ends (e.g. the pod is killed).
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID})
                connection.commit()
            try:
                before = current_revision(connection)
                connection.commit()
                command.upgrade(alembic_config(connection), "head")
                connection.commit()
                after = current_revision(connection)
                connection.commit()
            finally:
                if is_postgresql:
                    connection.rollback()
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID}
                    )
                    connection.commit()
    finally:
        engine.dispose()
    return before, after


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.migrate",
        description="Create or upgrade the schema in DATABASE_URL to the newest revision. "
        "Safe to run from several processes at once; exits 0 when the schema is current.",
    )
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = AppSettings.from_environ(os.environ if environ is None else environ)
    except SettingsError as error:
        print(f"invalid configuration: {error}", file=sys.stderr)
        return 2
    try:
        before, after = upgrade(settings.sqlalchemy_url)
    except Exception as error:
        print(f"migration failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if before == after:
        print(f"schema is current (revision {after})")
    else:
        print(f"schema upgraded from {before or 'empty'} to {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
