"""`python -m reasonbridge.report.gain`: one row's gain over another, with its bootstrap interval.

`make demo` ends with it: the newest finished run of each row (per seed) in one experiment, the
accuracy of both on the benchmark they share, and the paired 95% bootstrap interval of the
difference, paired on problems and on the seeds both rows ran (see report/stats.py).
"""
from __future__ import annotations

import argparse
import sys

from mlflow.tracking import MlflowClient

from reasonbridge.report.runs import RunRecord, fetch_runs, load_predictions
from reasonbridge.report.stats import delta_ci, mean_ci, problems_shared_across_seeds
from reasonbridge.tracking.mlflow_run import resolve_tracking_uri


def newest_per_seed(runs: list[RunRecord], row: str, seeds: set[str] | None) -> dict[str, RunRecord]:
    out: dict[str, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        if run.row == row and (seeds is None or run.seed in seeds):
            out[run.seed] = run
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbridge.report.gain", description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="demo", help="the runs' `table` tag (default: demo)")
    parser.add_argument("--row", default="reasonbridge", help="the row whose gain is reported")
    parser.add_argument("--baseline", default="base", help="the row it is compared with")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: every seed run)")
    parser.add_argument("--benchmark", default="synthetic")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args(argv)

    client = MlflowClient(tracking_uri=args.tracking_uri or resolve_tracking_uri(None))
    runs = fetch_runs(client, {args.table})
    seeds = set(args.seeds.split(",")) if args.seeds else None
    row, base = newest_per_seed(runs, args.row, seeds), newest_per_seed(runs, args.baseline, seeds)
    if not set(row) & set(base):
        print(f"error: no seed has finished runs of both rows {args.row!r} and {args.baseline!r} "
              f"(table {args.table!r}); run them first", file=sys.stderr)
        return 1
    load_predictions(client, [(r, args.benchmark) for runs_ in (row, base) for r in runs_.values()])
    scores = {name: {s: r.scores.get(args.benchmark, {}) for s, r in runs_.items()}
              for name, runs_ in ((args.row, row), (args.baseline, base))}
    if any(not v for per_seed in scores.values() for v in per_seed.values()):
        print(f"error: predictions/{args.benchmark}.jsonl missing from a run", file=sys.stderr)
        return 1
    shared_problems = problems_shared_across_seeds(args.benchmark)
    for name in (args.baseline, args.row):
        per_seed = scores[name]
        est = mean_ci(per_seed, shared=shared_problems, n_boot=args.bootstrap)
        accs = ", ".join(f"seed {s}: {sum(per_seed[s].values()) / len(per_seed[s]):.3f}" for s in est.seeds)
        print(f"{name:>14}: accuracy {est.value:.3f} [95% CI {est.lo:.3f}, {est.hi:.3f}]  ({accs}; "
              f"{len(per_seed[est.seeds[0]])} problems)")
    gain = delta_ci(scores[args.row], scores[args.baseline], shared=shared_problems, n_boot=args.bootstrap)
    verdict = "excludes 0" if gain.lo > 0 or gain.hi < 0 else "includes 0"
    how = "paired bootstrap over problems"
    if len(gain.seeds) > 1:
        how += (f" and seeds {', '.join(gain.seeds)}, each problem resampled once across seeds" if shared_problems
                else f" within each of seeds {', '.join(gain.seeds)}")
    print(f"{'gain':>14}: {100 * gain.value:+.1f} points [95% CI {100 * gain.lo:+.1f}, {100 * gain.hi:+.1f}] "
          f"({verdict}; {how})")
    if gain.dropped_seeds:
        print(f"{'':>14}  seeds {', '.join(gain.dropped_seeds)} left out of the gain: "
              "only one of the two rows ran them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
