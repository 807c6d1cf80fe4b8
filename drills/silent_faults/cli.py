"""``python -m drills.silent_faults``: run the silent-fault scenarios, print and write the report.

Owns the command line: options, the SIGTERM unwinding (so a CI timeout still removes every
process, node and namespace), the report file (with the command that produced it) and the exit
code. Does not run a scenario itself (``run``).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path

from drills.celery_failover.options import DEFAULT_REPORT_DIR
from drills.silent_faults.report import TABLE_HEADER, report_markdown
from drills.silent_faults.run import run_scenario
from drills.silent_faults.scenarios import SCENARIOS, SilentOptions
from infra.rabbitmq_config import PARTITION_HANDLING_MODES, ClassicConfigPeerDiscovery


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drills.silent_faults",
        description="Make a RabbitMQ node go silent (frozen, partitioned, cut off from the "
        "clients, or killed for comparison) under load and measure what Celery does: lost "
        "tasks, duplicates, the longest gap in completions, the longest publish call, the "
        "convergence after the fault, a countdown task. Each scenario starts a fresh 3-node "
        "cluster, every node in its own network namespace (needs root).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument(
        "--fault-seconds", type=float, default=60.0, help="how long each fault lasts"
    )
    parser.add_argument(
        "--rate", type=float, default=125.0, help="tasks per second published during the run"
    )
    parser.add_argument(
        "--report-dir", type=Path, default=DEFAULT_REPORT_DIR, help="where charts/reports go"
    )
    parser.add_argument(
        "--net-ticktime",
        type=int,
        default=None,
        help="compare: run the nodes with this net_ticktime instead of the deployed one",
    )
    parser.add_argument(
        "--partition-handling",
        choices=PARTITION_HANDLING_MODES,
        default=None,
        help="compare: run the nodes with this partition handling instead of the deployed one "
        "(RabbitMQ < 4.3)",
    )
    parser.add_argument(
        "--no-tls", action="store_true",
        help="plaintext AMQP and distribution (the baseline TLS is compared with); default: "
        "TLS for clients and between nodes, as deployed",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep every run's worker, scheduler and node logs next to the report (they are "
        "always kept for a run that lost tasks or left something behind)",
    )
    arguments = parser.parse_args(argv)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so every process and namespace is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    overrides: dict[str, object] = {}
    if arguments.net_ticktime is not None:
        overrides["net_ticktime_seconds"] = arguments.net_ticktime
    if arguments.partition_handling is not None:
        overrides["partition_handling"] = arguments.partition_handling
    try:
        options = SilentOptions(
            tls=not arguments.no_tls,
            fault_seconds=arguments.fault_seconds,
            rate=arguments.rate,
            report_dir=arguments.report_dir,
            keep_logs=arguments.keep_logs,
            broker_overrides=overrides,
        )
        if overrides:
            # Refuse a bad value here, before a cluster boots.
            from drills.rabbitmq_cluster import installed_version
            from infra.rabbitmq_config import BrokerSettings

            BrokerSettings(
                version=installed_version(), cluster_name="check",
                peer_discovery=ClassicConfigPeerDiscovery(nodes=("rabbit@check",)),
                target_cluster_size=3, memory_high_watermark_bytes=2**30,
                disk_free_limit_bytes=10**8, definitions_path="/check", **overrides,
            )
    except ValueError as error:
        parser.error(
            str(error).replace("fault_seconds:", "--fault-seconds:").replace("rate:", "--rate:")
            .replace("BrokerSettings.net_ticktime_seconds:", "--net-ticktime:")
        )
    command = shlex.join(["python", "-m", "drills.silent_faults", *(argv or sys.argv[1:])])
    results = []
    for name in arguments.scenario or list(SCENARIOS):
        print(f"[silent drill] {name}: {SCENARIOS[name].description} ...", flush=True)
        result = run_scenario(name, options)
        results.append(result)
        print(f"[silent drill]\n{TABLE_HEADER}\n{result.table_row()}", flush=True)
    report = report_markdown(results, command)
    (options.report_dir / "silent-report.md").write_text(report)
    print(report)
    print(f"charts and reports: {options.report_dir}")
    broken = [
        result.scenario
        for result in results
        if result.lost or result.scheduler_exit_code != 0 or result.leftover_processes
        or result.leftover_namespaces
    ]
    if broken:
        print(f"FAILED (lost tasks, failed publishing or leftovers): {broken}")
        return 1
    return 0
