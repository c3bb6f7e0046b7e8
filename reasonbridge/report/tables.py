"""Cells of each table: our value ± a 95% bootstrap interval beside the paper's value."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reasonbridge.report.runs import RunRecord
from reasonbridge.report.specs import RowSpec, TableSpec
from reasonbridge.report.stats import Estimate, delta_ci, mean_ci, problems_shared_across_seeds

NOT_RUN = "not run"


@dataclass
class Column:
    key: str  # benchmark option (accuracy tables) or implementation field
    header: str
    in_paper: bool  # False: a benchmark our runs measured that the paper's table does not have


@dataclass
class Cell:
    column: str
    paper: float | str | None = None
    ours: Estimate | None = None  # percent for accuracy; hours for training time
    text: str | None = None  # non-numeric values (adapter dim, learning rate)
    n_problems: int | None = None
    runs: list[RunRecord] = field(default_factory=list)
    interval_from: str = ""  # "predictions" or "acc/n" (the artifact was missing)
    delta: Estimate | None = None  # against the table's reference row, same student

    @property
    def within_noise(self) -> bool | None:
        return None if self.delta is None else self.delta.lo <= 0.0 <= self.delta.hi


@dataclass
class Line:
    group: str  # the student's label (or a reference-only group)
    model: str | None  # model option; None for the paper's reference-only rows
    row: str | None
    label: str
    cells: list[Cell]
    interventions: int | None = None
    paper_only: bool = False


@dataclass
class BuiltTable:
    spec: TableSpec
    columns: list[Column]
    lines: list[Line]
    notes: list[str]


def learning_rate(lr: float) -> str:
    """5e-05 -> 5e-5, as papers print it."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _latest_per_seed(runs: list[RunRecord]) -> list[RunRecord]:
    latest: dict[str, RunRecord] = {}
    for r in sorted(runs, key=lambda r: r.start_time):
        latest[r.seed] = r
    return [latest[s] for s in sorted(latest)]


def _row_tags(row: RowSpec) -> set[str]:
    return {row.row, *row.also}


def _models(spec: TableSpec, runs: list[RunRecord]) -> list[str]:
    seen = []
    for r in sorted(runs, key=lambda r: r.start_time):
        if r.model not in seen:
            seen.append(r.model)
    if spec.per_model:
        return list(spec.paper) + [m for m in seen if m not in spec.paper]
    return seen or [spec.paper_model]


def _label(spec: TableSpec, row: RowSpec, model: str) -> str:
    label = row.label.replace("{model}", spec.model_label(model))
    return f"{label}, {row.interventions} interventions" if spec.kind == "scaling" else label


def select(spec: TableSpec, runs: list[RunRecord]) -> dict[tuple[str, str, str], list[RunRecord]]:
    """(model, row, column) -> the latest finished run per seed that has the column's metric."""
    tags = {t: row for row in spec.rows for t in _row_tags(row)}
    mine = [r for r in runs if r.table in spec.sources and r.row in tags]
    chosen: dict[tuple[str, str, str], list[RunRecord]] = {}
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for r in mine:
        row = tags[r.row].row
        if spec.kind == "implementation":
            if "train/time_s" in r.metrics:
                groups.setdefault((r.model, row, "train"), []).append(r)
        else:
            for bench in r.benchmarks():
                groups.setdefault((r.model, row, bench), []).append(r)
    for key, members in groups.items():
        chosen[key] = _latest_per_seed(members)
    return chosen


def _score_groups(runs: list[RunRecord], bench: str) -> tuple[dict[str, dict[str, float]], str]:
    """seed -> {problem id: score}; from the predictions artifact, else rebuilt from acc and n."""
    out, source = {}, "predictions"
    for r in runs:
        scores = r.scores.get(bench)
        if scores is None:
            n = int(r.metrics.get(f"n/{bench}", 0))
            samples = int(r.params.get("inference.num_samples", "1"))
            if n <= 0 or samples != 1:
                continue
            correct = round(r.metrics[f"acc/{bench}"] * n)
            # ids unique to the run, so a rebuilt row is never paired problem by problem
            scores = {f"{r.run_id}#{i}": float(i < correct) for i in range(n)}
            source = "acc/n"
        out[r.seed] = scores
    return out, source


BUDGET_END = {"answer": "the answer is forced at the thinking budget (inference.budget_end=answer)",
              "stop": "generation stops at the token limit, no answer forced (inference.budget_end=stop)"}


def _budget_note(chosen: dict[tuple[str, str, str], list[RunRecord]]) -> str:
    """What every run of the table did when its thinking ran out, from its params."""
    ends = {r.params.get("inference.budget_end", "not recorded") for rs in chosen.values() for r in rs}
    if not ends:
        return ""
    if len(ends) == 1:
        end = next(iter(ends))
        return f"Thinking budget: in every run, {BUDGET_END.get(end, f'budget_end {end}')}."
    return ("Thinking budget: the runs differ in what happens when thinking runs out "
            f"(inference.budget_end: {', '.join(sorted(ends))}); their Δ mixes that in.")


def _interval_note(columns: list[Column]) -> str:
    shared = [c.key for c in columns if problems_shared_across_seeds(c.key)]
    generated = [c.key for c in columns if not problems_shared_across_seeds(c.key)]
    parts = []
    if shared:
        parts.append(f"{', '.join(shared)}: the same problems under every seed, each resampled once with its "
                     "mean over seeds (identical seeds give the one-seed interval)")
    if generated:
        parts.append(f"{', '.join(generated)}: problems generated per seed, resampled within their seed")
    return ("Intervals: " + "; ".join(parts) + ". With several seeds, a per-seed effect beyond what the problems "
            "explain enters as a second level (its variance estimated from the seed means).")


def _accuracy_table(spec: TableSpec, runs: list[RunRecord], n_boot: int) -> BuiltTable:
    chosen = select(spec, runs)
    found = {c for (_, _, c) in chosen} - set(spec.columns)
    measured = [k for k in spec.measured_columns if k in found] + sorted(found - set(spec.measured_columns))
    columns = [Column(k, h, True) for k, h in spec.columns.items()] + [
        Column(k, spec.measured_columns.get(k, f"{k} (measured)"), False) for k in measured]
    models = _models(spec, [r for rs in chosen.values() for r in rs])
    lines: list[Line] = []
    for model in models:
        if spec.per_model and model not in spec.paper and not any(k[0] == model for k in chosen):
            continue
        scores_by_row: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
        block = []
        for row in spec.rows:
            paper = spec.paper_values(model, row) or []
            cells = []
            for i, col in enumerate(columns):
                cell = Cell(col.key, paper=paper[i] if col.in_paper and i < len(paper) else None)
                selected = chosen.get((model, row.row, col.key), [])
                groups, source = _score_groups(selected, col.key)
                if groups:
                    est = mean_ci(groups, shared=problems_shared_across_seeds(col.key), n_boot=n_boot)
                    cell.ours = est.scaled(100)
                    cell.runs = selected
                    cell.n_problems = int(np.mean([len(g) for g in groups.values()]))
                    cell.interval_from = source
                    scores_by_row.setdefault(row.row, {})[col.key] = groups
                cells.append(cell)
            block.append(Line(spec.model_label(model), model, row.row, _label(spec, row, model), cells,
                              interventions=row.interventions))
        ref = spec.reference_row
        for line in block:
            if ref is None or line.row == ref:
                continue
            for cell in line.cells:
                a = scores_by_row.get(line.row, {}).get(cell.column)
                b = scores_by_row.get(ref, {}).get(cell.column)
                if a and b:
                    cell.delta = delta_ci(a, b, shared=problems_shared_across_seeds(cell.column),
                                          n_boot=n_boot).scaled(100)
        lines.extend(block)
    for group in spec.reference_only:
        for ref_row in group.get("rows", []):
            values = list(ref_row["values"]) + [None] * len(measured)
            lines.append(Line(group.get("group", "paper"), None, None, ref_row["label"],
                              [Cell(c.key, paper=v) for c, v in zip(columns, values)], paper_only=True))
    notes = [f"Sweep: `{spec.sweep}`; runs tagged table in {spec.sources}, latest finished run per row and seed.",
             "Ours: mean accuracy (%) ± half the width of its 95% percentile bootstrap interval (the interval "
             "can be asymmetric; the CSV has its ends, ci_lo and ci_hi); `not run`: no finished run has that "
             "benchmark."]
    notes.append(_interval_note(columns))
    budget = _budget_note(chosen)
    if budget:
        notes.append(budget)
    if spec.reference_row:
        notes.append(f"Δ: difference from the row `{spec.reference_row}` of the same student, paired on the seeds "
                     "both rows ran and the problems both answered; † marks a difference whose 95% interval "
                     "includes 0 (within noise).")
        deltas = [c.delta for line in lines for c in line.cells if c.delta is not None]
        if any(d.paired and d.dropped_seeds for d in deltas):
            notes.append("‡ Δ over the common seeds only: the seeds one of the two rows lacks are left out "
                         "(the CSV's delta_seeds).")
        if any(not d.paired for d in deltas):
            notes.append("§ Δ unpaired: no seed and problem in common (e.g. scores rebuilt from acc and n), "
                         "the two rows bootstrapped independently.")
    if not spec.per_model:
        notes.append(f"Paper: the paper's numbers for {spec.model_label(spec.paper_model)} "
                     f"(model={spec.paper_model}), shown beside every student's runs.")
    if measured:
        notes.append(f"Measured only (not in the paper's table): {', '.join(measured)}.")
    return BuiltTable(spec, columns, lines, notes)


def _loss(run: RunRecord) -> str:
    """The loss a run trained with, from what it logged: the hierarchical loss logs one term per level."""
    if "train/loss" not in run.metrics:
        return ""
    return ", hierarchical loss" if any(k.startswith("train/loss_") for k in run.metrics) else ", SFT loss"


def _implementation_table(spec: TableSpec, runs: list[RunRecord], n_boot: int) -> BuiltTable:
    chosen = select(spec, runs)
    columns = [Column(k, h, True) for k, h in spec.columns.items()]
    models = _models(spec, [r for rs in chosen.values() for r in rs])
    lines = []
    for model in models:
        for row in spec.rows:
            paper = spec.paper_values(model, row) or [None] * len(columns)
            selected = chosen.get((model, row.row, "train"), [])
            cells = [Cell(c.key, paper=p) for c, p in zip(columns, paper)]
            if selected:
                first = selected[0].params
                by_key = {c.column: c for c in cells}
                name = first.get("adapters.name", "?")
                by_key["adapter_dim"].text = ("all weights" if name == "full_ft" else
                                              f"{first.get('adapters.r', '?')} ({name})") + _loss(selected[0])
                by_key["learning_rate"].text = learning_rate(float(first["train.lr"])) if "train.lr" in first else "?"
                for key, metric, scale in (("params_modified_pct", "params/trainable_pct", 1.0),
                                           ("training_hours", "train/time_s", 1 / 3600)):
                    values = [r.metrics[metric] * scale for r in selected if metric in r.metrics]
                    if values:
                        # one value per seed: the interval is the seed level's alone
                        by_key[key].ours = (mean_ci({str(i): {"run": v} for i, v in enumerate(values)},
                                                    shared=False, n_boot=n_boot)
                                            if len(values) > 1 else Estimate(values[0], values[0], values[0]))
                for c in cells:
                    c.runs = selected
            lines.append(Line(spec.model_label(model), model, row.row, _label(spec, row, model), cells))
    notes = [f"Sweep: `{spec.sweep}`; any finished run of row(s) "
             f"{sorted({t for r in spec.rows for t in _row_tags(r)})} in tables {spec.sources} that trained.",
             "Ours: adapter dimension (param adapters.r as configured; auto: LoRA's budget-matched rank) and the "
             "loss (hierarchical when the run logged per-level terms train/loss_<level>), "
             "% trainable parameters (params/trainable_pct), "
             "learning rate (train.lr), measured training time (train/time_s; mean and 95% interval over seeds "
             "when there are several). Paper: 8x H100, bf16."]
    return BuiltTable(spec, columns, lines, notes)


def build_table(spec: TableSpec, runs: list[RunRecord], n_boot: int = 2000) -> BuiltTable:
    if spec.kind == "implementation":
        return _implementation_table(spec, runs, n_boot)
    return _accuracy_table(spec, runs, n_boot)


def predictions_needed(specs: list[TableSpec], runs: list[RunRecord]) -> list[tuple[RunRecord, str]]:
    """(run, benchmark) pairs whose predictions some accuracy cell reads, each once."""
    needed: dict[tuple[str, str], tuple[RunRecord, str]] = {}
    for spec in specs:
        if spec.kind == "implementation":
            continue
        for (_, _, bench), selected in select(spec, runs).items():
            for r in selected:
                needed[(r.run_id, bench)] = (r, bench)
    return list(needed.values())
