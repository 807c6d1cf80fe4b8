"""The observability drill: a real Prometheus and Alertmanager watch the platform on this machine.

    python -m drills.observability [--for-scale 0.05] [--scrape-interval 2]

Modules: ``platform`` starts everything from the files the platform deploys; ``receiver`` is the
webhook that records Alertmanager's notifications; ``services`` manages the drill's processes and
talks to Prometheus; ``run`` injects the faults, measures fault -> notification and restore ->
resolved, checks every dashboard query, and writes the report. ``tests/drills/
test_observability.py`` runs it (marker ``drill``).
"""

from drills.observability.platform import DrillOptions, ObservedPlatform
from drills.observability.run import AlertMeasurement, DrillReport, run_drill

__all__ = ["AlertMeasurement", "DrillOptions", "DrillReport", "ObservedPlatform", "run_drill"]
