"""Silent-fault drill: ``python -m drills.silent_faults [--scenario NAME] [--fault-seconds S]``.

A broker node rarely dies with a TCP reset on GKE: a VM stalls, a zone drops off the network, a
node stops answering. This drill makes that happen for real, under load, and measures what the
platform's Celery clients do. Each scenario boots a fresh 3-node RabbitMQ cluster with every
node in its own network namespace (``drills.netns_cluster``, booted from the config the
Kubernetes component deploys), runs two workers (the Deployment's command line) and the app's
scheduler in a clients namespace, and then:

- ``freeze``: SIGSTOP the node the clients use (also the queue's leader), SIGCONT after the window;
- ``partition``: cut the clients' node off every network (dropped, no reset), heal after it;
- ``leader-partition``: the same to the task queue's leader while the clients use another node;
- ``clients-cut``: drop only the traffic between the clients and their node; the cluster stays
  whole;
- ``kill``: SIGKILL the clients' node and start it after the window, for comparison.

For each: confirmed publishes lost, duplicates, the longest gap between task completions from
5 s before the fault to the end, when processing resumed, the longest single publish call, the
time from the end of the fault until every node runs, every quorum queue has all its members
online and no partition is reported, and whether a countdown task due mid-fault still ran.
It writes ``silent-<scenario>.png`` (completions per second, the fault window shaded),
``silent-<scenario>.json`` and ``silent-report.md`` (the table, the command that produced it)
into the report directory (default ``build/drills``).

The package: ``scenarios`` (faults, options), ``run`` (one scenario end to end), ``report``
(results, goals, table), ``cli``. Measurement, processes and charts come from
``drills.celery_failover``.

Does not own: the cluster and its faults (``drills.netns_cluster``, ``drills.netns``) or the
client settings under test (``app.broker``, ``app.bootsteps``, ``app.settings``).
"""

from drills.silent_faults.report import TABLE_HEADER, SilentResult, report_markdown
from drills.silent_faults.run import run_scenario
from drills.silent_faults.scenarios import SCENARIOS, SilentOptions, SilentScenario

__all__ = [
    "SCENARIOS",
    "TABLE_HEADER",
    "SilentOptions",
    "SilentResult",
    "SilentScenario",
    "report_markdown",
    "run_scenario",
]
