"""``python -m drills.celery_failover``: run scenarios, print and write the report.

Owns the command line: options, the SIGTERM unwinding (so a CI timeout still removes every
process and node), the report file and the exit code. Does not run a scenario itself (``run``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from drills.celery_failover.options import DEFAULT_REPORT_DIR, MIN_TASKS, SCENARIOS, DrillOptions
from drills.celery_failover.report import report_markdown
from drills.celery_failover.run import run_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drills.celery_failover",
        description="Kill RabbitMQ nodes and Celery workers under load and measure: lost tasks, "
        "duplicates, pauses. Each scenario starts a fresh 3-node cluster (~30 s).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--tasks", type=int, default=MIN_TASKS, help="tasks per scenario")
    parser.add_argument(
        "--work-seconds", type=float, default=0.002, help="extra work per task (sleep)"
    )
    parser.add_argument(
        "--report-dir", type=Path, default=DEFAULT_REPORT_DIR, help="where charts/reports go"
    )
    parser.add_argument(
        "--no-tls", action="store_true",
        help="plaintext AMQP and distribution (the baseline TLS is compared with); default: "
        "TLS for clients and between nodes, as deployed",
    )
    arguments = parser.parse_args(argv)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so every process and node is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        options = DrillOptions(
            tasks=arguments.tasks,
            work_seconds=arguments.work_seconds,
            report_dir=arguments.report_dir,
            tls=not arguments.no_tls,
        )
    except ValueError as error:
        parser.error(
            str(error).replace("tasks:", "--tasks:").replace("work_seconds", "--work-seconds")
        )
    results = []
    for name in arguments.scenario or list(SCENARIOS):
        print(f"[celery drill] {name}: {SCENARIOS[name].description} ...", flush=True)
        result = run_scenario(name, options)
        results.append(result)
        print(f"[celery drill] {result.table_row()}", flush=True)
    report = report_markdown(results)
    (options.report_dir / "report.md").write_text(report)
    print(report)
    print(f"charts and reports: {options.report_dir}")
    failed = [
        result.scenario
        for result in results
        if result.lost or result.scheduler_exit_code != 0 or result.leftover_processes
    ]
    if failed:
        print(f"FAILED (lost tasks, failed publishing or leftover processes): {failed}")
        return 1
    return 0


