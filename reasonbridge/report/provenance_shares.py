"""Provenance tracing in the report: per row of a sweep, the share of the trained model's sentences
that are teacher-originated, student-originated, shared or boosted (metrics `provenance/<category>`
of runs with provenance=trace), mean over seeds; a stacked-bar figure and a table."""
from __future__ import annotations

from pathlib import Path
from statistics import mean

from reasonbridge.report.runs import RunRecord

CATEGORIES = ("teacher", "student", "shared", "boosted")  # as reasonbridge.provenance.categories
COLORS = {"teacher": "#1f77b4", "student": "#ff7f0e", "shared": "#9a9a9a", "boosted": "#2ca02c"}
SOURCE = "provenance"  # the run tag `table` of `experiment=provenance`


def provenance_rows(runs: list[RunRecord]) -> list[dict]:
    """One line per (table, row) of runs that traced provenance: mean shares over their runs."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for run in runs:
        if all(f"provenance/{c}" in run.metrics for c in CATEGORIES):
            groups.setdefault((run.table, run.row), []).append(run)
    lines = []
    for (table, row), group in sorted(groups.items()):
        line = {"table": table, "row": row, "runs": len(group), "seeds": sorted({r.seed for r in group})}
        for c in CATEGORIES:
            line[c] = mean(r.metrics[f"provenance/{c}"] for r in group)
            for verdict in ("correct", "wrong"):
                vals = [r.metrics[f"provenance/{verdict}/{c}"] for r in group if f"provenance/{verdict}/{c}" in r.metrics]
                line[f"{verdict}/{c}"] = mean(vals) if vals else None
        accs = [v for r in group for k, v in r.metrics.items() if k.startswith("acc/")]
        line["acc"] = mean(accs) if accs else None
        lines.append(line)
    return lines


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def write_provenance(runs: list[RunRecord], out_dir: Path) -> list[Path]:
    """reports/provenance.md, .png and .pdf; nothing when no run traced provenance."""
    lines = provenance_rows(runs)
    if not lines:
        return []
    md = out_dir / "provenance.md"
    head = ["table", "row", "runs", "accuracy", *CATEGORIES, "teacher (correct)", "teacher (wrong)",
            "student (correct)", "student (wrong)"]
    text = ["# Provenance of the trained model's sentences (%)", "",
            "Shares of test-time sentences by where they came from (docs/provenance.md), mean over runs.", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in lines:
        cells = [line["table"], line["row"], str(line["runs"]), _pct(line["acc"]), *(_pct(line[c]) for c in CATEGORIES),
                 _pct(line["correct/teacher"]), _pct(line["wrong/teacher"]),
                 _pct(line["correct/student"]), _pct(line["wrong/student"])]
        text.append("| " + " | ".join(cells) + " |")
    md.write_text("\n".join(text) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{line['row']} ({line['table']}, {line['runs']} run{'s' if line['runs'] != 1 else ''})" for line in lines]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(lines) + 1.4))
    left = [0.0] * len(lines)
    for c in CATEGORIES:
        widths = [100 * line[c] for line in lines]
        ax.barh(labels, widths, left=left, color=COLORS[c], label=c)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of sentences (%)")
    ax.invert_yaxis()
    ax.legend(ncol=4, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    paths = [out_dir / "provenance.png", out_dir / "provenance.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return [md, *paths]
