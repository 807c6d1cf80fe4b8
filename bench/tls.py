"""What TLS costs the broker path: ``.venv/bin/python -m bench.tls``.

Three local 3-node RabbitMQ clusters (``drills.rabbitmq_cluster``, the deployed rabbitmq.conf)
run side by side in the same run: **plaintext** (the baseline), **client TLS** (AMQPS for the
workers and publishers, plain Erlang distribution) and **client + inter-node TLS** (as deployed:
distribution, i.e. quorum-queue replication of every message, over mutual TLS too). Each
repeat drains the same two variants through each cluster, in rotating order, with the
platform's own worker (``bench.throughput``: the app's Celery object, the Deployment's command
line, prefetch 16): **per item** (one message per item) and **chunked** (``--chunk`` items per
message). Reported as median and min-max over the repeats, with the ratio to the plaintext run
of the same repeat, and the broker and worker CPU per message (where the cost goes: the worker
side pays client TLS, the broker pays both).

Goal (issue 17): TLS costs at most 20 % of per-item throughput. Numbers, not pass/fail. Every
cluster and worker is removed at the end, even on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.throughput import (
    COMPLETIONS_ENV,
    Drain,
    Variant,
    bench_environment,
    calls_for,
    check_sizes,
    declare_queues,
    drain,
    platform_app,
    publish_with_confirm_window,
)

PER_ITEM_COST_GOAL = 0.20
"""TLS may cost at most this fraction of per-item throughput."""


@dataclass(frozen=True)
class Configuration:
    name: str
    tls: bool
    inter_node_tls: bool


CONFIGURATIONS = (
    Configuration("plaintext", tls=False, inter_node_tls=False),
    Configuration("client TLS", tls=True, inter_node_tls=False),
    Configuration("client + inter-node TLS", tls=True, inter_node_tls=True),
)


def _purge(app, queue: str) -> None:
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


def _spread(values: list[float], fmt: str) -> str:
    return (f"{format(statistics.median(values), fmt)} "
            f"({format(min(values), fmt)}-{format(max(values), fmt)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5_000, help="items, per-item variant")
    parser.add_argument("--chunked-items", type=int, default=100_000,
                        help="items, chunked variant")
    parser.add_argument("--chunk", type=int, default=100, help="items per chunked message")
    parser.add_argument("--prefetch", type=int, default=16, help="worker prefetch multiplier")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every variant")
    arguments = parser.parse_args(argv)
    check_sizes(parser, arguments)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from drills.rabbitmq_cluster import LocalRabbitMQCluster

    plan = [
        Variant(f"per item, prefetch {arguments.prefetch}", platform=True, chunked=False,
                prefetch=arguments.prefetch),
        Variant(f"chunked, prefetch {arguments.prefetch}", platform=True, chunked=True,
                prefetch=arguments.prefetch),
    ]
    with contextlib.ExitStack() as stack:
        clusters, environments, apps, pids = {}, {}, {}, {}
        for configuration in CONFIGURATIONS:
            cluster = stack.enter_context(LocalRabbitMQCluster(
                size=3, tls=configuration.tls, inter_node_tls=configuration.inter_node_tls))
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            environment = bench_environment(cluster.broker_url(), scratch)
            environment.update(cluster.client_environment())
            clusters[configuration.name] = cluster
            environments[configuration.name] = environment
            apps[configuration.name] = platform_app(environment)
            declare_queues(apps[configuration.name])
            pids[configuration.name] = [cluster.beam_pid(n.name) for n in cluster.nodes]
        version = next(iter(clusters.values())).version
        print(f"RabbitMQ {version} (Debian), 3 local nodes per configuration on "
              f"{os.cpu_count()} cores, the platform's worker --concurrency 2; "
              f"{arguments.items:,} items per item, {arguments.chunked_items:,} chunked by "
              f"{arguments.chunk}; {arguments.repeats} repeats, configurations interleaved",
              flush=True)
        runs = [(c, v) for v in plan for c in CONFIGURATIONS]
        results: dict[tuple[str, str], list[Drain]] = {(c.name, v.name): [] for c, v in runs}
        ratios: dict[tuple[str, str], list[float]] = {(c.name, v.name): [] for c, v in runs}
        for repeat in range(arguments.repeats):
            shift = repeat % len(CONFIGURATIONS)
            measured: dict[tuple[str, str], Drain] = {}
            for variant in plan:
                order = CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]
                for configuration in order:
                    name = configuration.name
                    items = arguments.chunked_items if variant.chunked else arguments.items
                    calls = calls_for(variant, items, arguments.chunk)
                    result = None
                    for attempt in (1, 2):
                        _purge(apps[name], variant.queue)
                        publish_with_confirm_window(apps[name], calls)
                        try:
                            result = drain(apps[name], variant, len(calls), items,
                                           Path(environments[name][COMPLETIONS_ENV]),
                                           environments[name], pids[name],
                                           timeout=max(120.0, items / 100))
                            break
                        except RuntimeError as error:
                            # A publish retried after a lost confirm leaves a duplicate: the
                            # count is no longer exact, so this drain is measured again.
                            if attempt == 2:
                                raise
                            print(f"  {name} {variant.name}: {error}; measured again",
                                  flush=True)
                    assert result is not None
                    measured[(name, variant.name)] = result
                    print(f"  repeat {repeat + 1}: {name:<24} {variant.name:<20} "
                          f"{result.items_per_second:>10,.0f} items/s  broker "
                          f"{result.broker_cpu_ms_per_message:.2f} ms CPU/msg  worker "
                          f"{result.worker_cpu_ms_per_message:.2f} ms CPU/msg", flush=True)
            for configuration, variant in runs:
                key = (configuration.name, variant.name)
                base = measured[(CONFIGURATIONS[0].name, variant.name)]
                results[key].append(measured[key])
                ratios[key].append(measured[key].items_per_second / base.items_per_second)

    print()
    header = (f"{'configuration':<24} {'variant':<20} {'items/s, median (min-max)':>28} "
              f"{'vs plaintext':>20} {'broker ms CPU/msg':>18} {'worker ms CPU/msg':>18}")
    print(header)
    print("-" * len(header))
    for configuration, variant in runs:
        key = (configuration.name, variant.name)
        drains = results[key]
        print(f"{configuration.name:<24} {variant.name:<20} "
              f"{_spread([d.items_per_second for d in drains], ',.0f'):>28} "
              f"{_spread(ratios[key], '.2f'):>20} "
              f"{statistics.median(d.broker_cpu_ms_per_message for d in drains):>18.2f} "
              f"{statistics.median(d.worker_cpu_ms_per_message for d in drains):>18.2f}")
    deployed = (CONFIGURATIONS[-1].name, plan[0].name)
    cost = 1 - statistics.median(ratios[deployed])
    print()
    print(f"goal: TLS (as deployed) costs <= {PER_ITEM_COST_GOAL:.0%} of per-item throughput: "
          f"{cost:.0%} median ({'met' if cost <= PER_ITEM_COST_GOAL else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
