"""``python -m drills.observability``: run the drill, print and write its report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drills.observability.platform import DrillOptions
from drills.observability.run import markdown, run_drill


def main(argv: list[str] | None = None) -> int:
    defaults = DrillOptions()
    parser = argparse.ArgumentParser(prog="python -m drills.observability",
                                     description="Fire the platform's alerts for real.")
    parser.add_argument("--for-scale", type=float, default=defaults.for_scale,
                        help=f"multiply every for: (default {defaults.for_scale}; 1 = production)")
    parser.add_argument("--scrape-interval", type=int, default=defaults.scrape_interval_seconds,
                        help="seconds between scrapes (default %(default)s)")
    parser.add_argument("--report-dir", type=Path, default=defaults.report_dir,
                        help="where report.md/report.json and the generated files go")
    args = parser.parse_args(argv)
    try:
        options = DrillOptions(for_scale=args.for_scale,
                               scrape_interval_seconds=args.scrape_interval,
                               report_dir=args.report_dir)
    except ValueError as error:
        parser.error(str(error))
    report = run_drill(options)
    print(markdown(report))
    missing = [m.alertname for m in report.measurements
               if m.delivered_after is None or m.resolved_after is None]
    return 1 if missing or report.dashboard_empty or report.baseline_firing else 0


if __name__ == "__main__":
    sys.exit(main())
