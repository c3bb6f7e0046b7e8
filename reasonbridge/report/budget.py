"""The budget curve (issue 24, experiment=bridge): student accuracy against teacher queries, one line
per distillation method (direct, bridge), 95% bootstrap intervals over problems and seeds from each
run's predictions (report/stats.py), and the same points as a table (Markdown and CSV) beside it.
The cost axis is what each point paid the teacher (`budget/queries`; `data/pool` for a direct run over
the whole pool), in dollars too when the teacher's prices were configured (`budget/cost_usd`)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from reasonbridge.report.runs import RunRecord, fetch_runs, load_predictions
from reasonbridge.report.stats import Estimate, mean_ci, problems_shared_across_seeds

TABLE = "bridge"  # the runs' `table` tag (conf/experiment/bridge.yaml)


@dataclass
class Point:
    method: str  # direct | bridge
    benchmark: str
    queries: float
    cost_usd: float
    acc: Estimate  # in [0, 1]
    ta_acc: float | None  # bridge: the TA's own accuracy (mean over seeds)
    runs: list[RunRecord]


def method_of(run: RunRecord) -> str:
    return "bridge" if any(k.startswith("bridge/") for k in run.metrics) else "direct"


def queries_of(run: RunRecord) -> float | None:
    return run.metrics.get("budget/queries", run.metrics.get("data/pool"))


def newest(runs: list[RunRecord]) -> list[RunRecord]:
    """The newest run of each (row, seed): a rerun replaces the earlier one."""
    best: dict[tuple, RunRecord] = {}
    for r in runs:
        key = (r.row, r.seed, method_of(r), queries_of(r))
        if key not in best or r.start_time > best[key].start_time:
            best[key] = r
    return list(best.values())


def budget_points(runs: list[RunRecord], n_boot: int = 2000) -> list[Point]:
    groups: dict[tuple, list[RunRecord]] = {}
    for r in newest([r for r in runs if r.table == TABLE]):
        q = queries_of(r)
        for bench in r.benchmarks():
            if q is not None:
                groups.setdefault((method_of(r), bench, q), []).append(r)
    points = []
    for (method, bench, q), group in sorted(groups.items()):
        scores = {r.seed: r.scores[bench] for r in group if r.scores.get(bench)}
        if scores:
            acc = mean_ci(scores, shared=problems_shared_across_seeds(bench), n_boot=n_boot)
        else:  # no predictions artifact: the mean of acc/, no interval
            v = sum(r.metrics[f"acc/{bench}"] for r in group) / len(group)
            acc = Estimate(v, v, v, seeds=tuple(r.seed for r in group))
        ta = [r.metrics[f"bridge/ta_acc/{bench}"] for r in group if f"bridge/ta_acc/{bench}" in r.metrics]
        points.append(Point(method, bench, q, sum(r.metrics.get("budget/cost_usd", 0.0) for r in group) / len(group),
                            acc, sum(ta) / len(ta) if ta else None, group))
    return points


def plot_budget(points: list[Point], out_dir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    benches = sorted({p.benchmark for p in points}) or ["synthetic"]
    fig, axes = plt.subplots(1, len(benches), figsize=(5.2 * len(benches), 3.9), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        for method, marker in (("direct", "o"), ("bridge", "s")):
            pts = sorted((p for p in points if p.benchmark == bench and p.method == method), key=lambda p: p.queries)
            if not pts:
                continue
            x = [p.queries for p in pts]
            (line,) = ax.plot(x, [100 * p.acc.value for p in pts], marker=marker, label=f"{method} (student)")
            ax.fill_between(x, [100 * p.acc.lo for p in pts], [100 * p.acc.hi for p in pts], alpha=0.15,
                            color=line.get_color(), linewidth=0)
        if not points:
            ax.text(0.5, 0.5, "not run: make sweep-bridge", transform=ax.transAxes, ha="center")
        ax.set_xscale("log")
        ax.set_xlabel("teacher queries (log)")
        ax.set_ylabel("student accuracy (%)")
        ax.set_title(bench)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False, ncol=2)
    fig.suptitle("Accuracy per teacher query: direct distillation vs BRIDGE (95% intervals)", fontsize=10)
    fig.tight_layout()
    paths = [out_dir / "budget_curve.png", out_dir / "budget_curve.pdf"]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def write_budget_table(points: list[Point], out_dir: Path) -> list[Path]:
    header = ["method", "benchmark", "teacher queries", "cost (USD)", "student acc (%)", "95% CI", "TA acc (%)",
              "seeds", "runs"]
    rows = [[p.method, p.benchmark, f"{p.queries:g}", f"{p.cost_usd:.4f}", f"{100 * p.acc.value:.1f}",
             f"[{100 * p.acc.lo:.1f}, {100 * p.acc.hi:.1f}]", "" if p.ta_acc is None else f"{100 * p.ta_acc:.1f}",
             ",".join(sorted(p.acc.seeds)), " ".join(r.run_id for r in p.runs)] for p in points]
    md = out_dir / "budget_curve.md"
    lines = ["# Budget curve: student accuracy against teacher queries", "",
             "![budget curve](budget_curve.png)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows] or ["| not run: `make sweep-bridge` |"]
    md.write_text("\n".join(lines) + "\n")
    path = out_dir / "budget_curve.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return [md, path]


def build_budget_report(client: MlflowClient, out_dir: Path, n_boot: int = 2000, workers: int = 8) -> list[Path]:
    """reports/budget_curve.{png,pdf,md,csv} from the runs tagged table=bridge (none: says not run)."""
    runs = fetch_runs(client, {TABLE})
    load_predictions(client, [(r, b) for r in runs for b in r.benchmarks()], workers=workers)
    points = budget_points(runs, n_boot=n_boot)
    return plot_budget(points, out_dir) + write_budget_table(points, out_dir)
