"""Observability as code: what is scraped, which alerts fire, where they go, what a dashboard shows.

One package, one module per concept, all pure except the component:

- ``sources``: the metric vocabulary of every exporter the platform runs (job names, ports,
  endpoints, and the metric names that differ between the RabbitMQ versions we run);
- ``alerts``: the Prometheus alert rule groups and their validated thresholds;
- ``routing``: Alertmanager's configuration (receivers, grouping, inhibition) and the GMP
  ``Rules`` / ``ClusterRules`` objects that carry the rule groups;
- ``scrape``: scrape targets as GMP ``PodMonitoring`` objects and as plain Prometheus scrape
  configurations (the ``local`` stack and the drill), plus the NetworkPolicy rule that admits
  the scraper;
- ``postgres_exporter``: the PostgreSQL exporter sidecar and its least-privilege role;
- ``backup_exporter``: the backup-freshness exporter sidecar of the pghoard pod;
- ``dashboard``: one panel list rendered as a Cloud Monitoring and a Grafana dashboard;
- ``component``: the ``Observability`` ComponentResource that creates the objects (GMP objects,
  the Alertmanager Secret and a Cloud Monitoring dashboard on GKE; Prometheus files, the
  Alertmanager configuration and a Grafana dashboard on ``local``).

The same functions feed the Kubernetes objects and the local drill (``drills/observability.py``),
which runs a real Prometheus and Alertmanager on the generated files.

Does not own the exporters' own processes (RabbitMQ's plugin, Flower, the web app's
``app/metrics.py``, pghoard's ``pghoard/backup_metrics.py``) or the workloads' pod specs: each
workload adds the sidecar, port and NetworkPolicy rule these builders return.
"""
