"""`python -m reasonbridge.report`: rebuild reports/ from the MLflow runs of every table."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mlflow.exceptions import MlflowException

from reasonbridge.report.build import ROOT, build_report
from reasonbridge.report.specs import SpecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reasonbridge.report",
        description="Tables 1-4 and the test-time scaling figure from MLflow runs: Markdown, LaTeX, CSV, "
                    "PNG/PDF and an index (README.md) with each cell's run ids. Rows without runs show 'not run'.",
        epilog="Tracking URI: --tracking-uri, else MLFLOW_TRACKING_URI, else tracking.uri in "
               "conf/tracking/mlflow.yaml, else MLflow's default (./mlflow.db).")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI to read runs from")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="output folder (default: reports/)")
    parser.add_argument("--experiments", type=Path, default=ROOT / "experiments",
                        help="folder of table definitions (default: experiments/)")
    parser.add_argument("--tables", default=None,
                        help="comma-separated table names to build (default: all, e.g. table1,table2,scaling)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples per interval")
    parser.add_argument("--workers", type=int, default=8, help="threads fetching predictions artifacts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.bootstrap < 100:
        parser.error("--bootstrap must be >= 100")
    try:
        summary = build_report(args.out, args.experiments, args.tracking_uri,
                               args.tables.split(",") if args.tables else None, args.bootstrap, args.workers)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except MlflowException as e:  # an unreachable server, a store of another MLflow schema, ...
        print(f"error: cannot read runs from the MLflow tracking URI: {e.message}", file=sys.stderr)
        return 1
    filled = sum(1 for t in summary.tables for line in t.lines for c in line.cells if c.runs)
    print(f"report: {summary.runs} runs from {summary.uri} -> {len(summary.tables)} tables "
          f"({filled} cells from runs) in {summary.seconds:.1f}s; open {args.out / 'README.md'}")
    print(f"report: {summary.count.line()}")  # what it counted, and why the rest were left out
    return 0


if __name__ == "__main__":
    sys.exit(main())
