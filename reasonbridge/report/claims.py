"""The claims table that opens the report: each claim of the paper that our tables test, the paper's
number, ours with its paired 95% interval, and a verdict that follows the interval.

A claim is a difference between two rows of one built table, on one student and one benchmark
column (the paper's column when runs have it, else the first our runs measured). Verdicts:
*holds* when the interval clears the claim's threshold, *does not hold* when it lies wholly on the
wrong side, *within noise* otherwise; *not run* when a row it needs has no runs."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from reasonbridge.report.stats import Estimate, delta_ci, problems_shared_across_seeds
from reasonbridge.report.tables import BuiltTable, Cell, Column, Line, _score_groups

HOLDS, FAILS, NOISE, NOT_RUN = "holds", "does not hold", "within noise", "not run"
CLOSE_MARGIN = 3.0  # points: "close to" means not worse by more than this


@dataclass
class Verdict:
    claim: str
    source: str  # where the number comes from: table, rows, column
    paper: float | None
    ours: Estimate | None  # percentage points
    verdict: str
    model: str | None = None
    detail: str = ""
    runs: list[str] = field(default_factory=list)  # MLflow run ids behind ours


def verdict_of(est: Estimate | None, threshold: float = 0.0) -> str:
    """The claim is `difference > threshold`: its interval decides."""
    if est is None:
        return NOT_RUN
    if est.lo > threshold:
        return HOLDS
    if est.hi < threshold:
        return FAILS
    return NOISE


def _line(table: BuiltTable, model: str, row: str) -> Line | None:
    return next((l for l in table.lines if l.model == model and l.row == row and not l.paper_only), None)


def _cell(line: Line | None, column: str) -> Cell | None:
    return None if line is None else next((c for c in line.cells if c.column == column), None)


def _columns(table: BuiltTable, model: str, rows: list[str]) -> list[Column]:
    """The columns where every one of ``rows`` has runs for ``model``: the paper's first, then measured."""
    cols = [c for c in table.columns
            if all((cell := _cell(_line(table, model, r), c.key)) is not None and cell.runs for r in rows)]
    return sorted(cols, key=lambda c: not c.in_paper)


def _diff(table: BuiltTable, model: str, a: str, b: str, column: str, n_boot: int) -> tuple[Estimate | None, list[str]]:
    """Row a minus row b in points, paired on seeds and problems; and the run ids behind it."""
    ca, cb = _cell(_line(table, model, a), column), _cell(_line(table, model, b), column)
    if ca is None or cb is None or not ca.runs or not cb.runs:
        return None, []
    ga, _ = _score_groups(ca.runs, column)
    gb, _ = _score_groups(cb.runs, column)
    if not ga or not gb:
        return None, []
    est = delta_ci(ga, gb, shared=problems_shared_across_seeds(column), n_boot=n_boot).scaled(100)
    return est, [r.run_id for r in ca.runs + cb.runs]


def _paper_diff(table: BuiltTable, a: str, b: str, column_index: int = 0, model: str | None = None) -> float | None:
    spec = table.spec
    rows = {r.row: r for r in spec.rows}
    if a not in rows or b not in rows:
        return None
    pa = spec.paper_values(model or spec.paper_model, rows[a]) or []
    pb = spec.paper_values(model or spec.paper_model, rows[b]) or []
    if len(pa) <= column_index or len(pb) <= column_index or pa[column_index] is None or pb[column_index] is None:
        return None
    return round(float(pa[column_index]) - float(pb[column_index]), 1)


def _models(table: BuiltTable) -> list[str]:
    seen: list[str] = []
    for line in table.lines:
        if line.model and any(c.runs for c in line.cells) and line.model not in seen:
            seen.append(line.model)
    return seen


def _source(table: BuiltTable, a: str, b: str, column: str | None) -> str:
    return f"[{table.spec.name}]({table.spec.name}.md): `{a}` − `{b}`" + (f", {column}" if column else "")


def _pair_claim(tables: dict[str, BuiltTable], name: str, text: str, a: str, b: str, n_boot: int,
                threshold: float = 0.0, paper_table: str | None = None, paper_rows: tuple[str, str] | None = None,
                detail: str = "") -> list[Verdict]:
    """One verdict per student of table ``name`` for `row a − row b > threshold`."""
    table = tables.get(name)
    if table is None:
        return []
    pt = tables.get(paper_table or name, table)
    pa, pb = paper_rows or (a, b)
    paper = _paper_diff(pt, pa, pb)
    out = []
    for model in _models(table) or [None]:
        cols = _columns(table, model, [a, b]) if model else []
        if not cols:
            out.append(Verdict(text, _source(table, a, b, None), paper, None, NOT_RUN, model, detail))
            continue
        col = cols[0]
        est, runs = _diff(table, model, a, b, col.key, n_boot)
        out.append(Verdict(text, _source(table, a, b, col.key), paper, est, verdict_of(est, threshold), model,
                           detail, runs))
    return out


def _largest_loss(tables: dict[str, BuiltTable], n_boot: int) -> list[Verdict]:
    """Of the three adapter levels, removing the strategic adapters costs most: for each other level,
    (without it) − (without strategic) > 0."""
    table = tables.get("table2")
    if table is None:
        return []
    text = "Removing the strategic adapters is the largest loss of the three adapter levels"
    others = ["no_tactical", "no_operational"]
    paper_loss = _paper_diff(table, "reasonbridge", "no_strategic")
    out = []
    for model in _models(table) or [None]:
        cols = _columns(table, model, ["reasonbridge", "no_strategic", *others]) if model else []
        if not cols:
            out.append(Verdict(text, _source(table, "no_tactical|no_operational", "no_strategic", None),
                               paper_loss, None, NOT_RUN, model))
            continue
        col = cols[0].key
        loss, runs = _diff(table, model, "reasonbridge", "no_strategic", col, n_boot)
        gaps = {o: _diff(table, model, o, "no_strategic", col, n_boot)[0] for o in others}
        verdicts = [verdict_of(g) for g in gaps.values()]
        verdict = HOLDS if all(v == HOLDS for v in verdicts) else FAILS if FAILS in verdicts else NOISE
        losses = {o: _diff(table, model, "reasonbridge", o, col, n_boot)[0] for o in others}
        detail = "loss of each level: strategic {}; {}".format(
            _fmt(loss), "; ".join(f"{o.removeprefix('no_')} {_fmt(losses[o])}" for o in others))
        out.append(Verdict(text, _source(table, "no_tactical|no_operational", "no_strategic", col),
                           paper_loss, loss, verdict, model, detail, runs))
    return out


def _across(tables: dict[str, BuiltTable], name: str, text: str, a: str, b: str, n_boot: int,
            by: str) -> list[Verdict]:
    """`a − b > 0` for every student (by="model") or every benchmark column (by="column") of a table;
    one line per student or column, then (by student) one summary verdict."""
    table = tables.get(name)
    if table is None:
        return []
    out = []
    if by == "model":
        per = []
        for model in _models(table):
            cols = _columns(table, model, [a, b])
            if cols:
                est, runs = _diff(table, model, a, b, cols[0].key, n_boot)
                per.append((model, cols[0].key, est, runs))
        paper_gains = [g for m in table.spec.paper if (g := _paper_diff(table, a, b, 0, m)) is not None]
        paper = min(paper_gains) if paper_gains else None
        if not per:
            return [Verdict(text, _source(table, a, b, None), paper, None, NOT_RUN)]
        verdicts = [verdict_of(e) for _, _, e, _ in per]
        verdict = (HOLDS if all(v == HOLDS for v in verdicts) and len(per) >= 2 else
                   FAILS if FAILS in verdicts else NOISE)
        worst = min(per, key=lambda p: p[2].value if p[2] else float("inf"))
        detail = (f"{len(per)} student(s); the smallest gain is shown (paper: the smallest of its five); each: "
                  + "; ".join(f"{m} {_fmt(e)}" for m, _, e, _ in per)
                  + ("" if len(per) >= 2 else "; one size cannot show a trend across sizes"))
        return [Verdict(text, _source(table, a, b, worst[1]), paper, worst[2], verdict, None, detail,
                        [r for p in per for r in p[3]])]
    paper_gains = [g for i in range(len(table.spec.columns)) if (g := _paper_diff(table, a, b, i)) is not None]
    smallest = min(paper_gains) if paper_gains else None
    for model in _models(table):
        for col in _columns(table, model, [a, b]):
            if col.key in table.spec.in_distribution:
                continue
            est, runs = _diff(table, model, a, b, col.key, n_boot)
            paper = (_paper_diff(table, a, b, list(table.spec.columns).index(col.key)) if col.in_paper
                     else smallest)  # a task the paper lacks: beside the paper's smallest transfer gain
            out.append(Verdict(f"{text}: {col.header}", _source(table, a, b, col.key), paper, est,
                               verdict_of(est), model, "", runs))
    return out or [Verdict(text, _source(table, a, b, None), None, None, NOT_RUN)]


def build_claims(tables: list[BuiltTable], n_boot: int = 2000) -> list[Verdict]:
    by = {t.spec.name: t for t in tables}
    claims: list[Verdict] = []
    claims += _pair_claim(by, "table2", "Curated selection beats random selection of the same size",
                          "reasonbridge", "random_data", n_boot)
    claims += _pair_claim(by, "table2", f"The curated set is close to the full pool (not worse by more than "
                          f"{CLOSE_MARGIN:g} points) with far less data", "reasonbridge", "full_data", n_boot,
                          threshold=-CLOSE_MARGIN)
    claims += _largest_loss(by, n_boot)
    claims += _pair_claim(by, "table2", "Hierarchical adapters beat LoRA at the same parameter budget",
                          "reasonbridge", "lora", n_boot)
    claims += _pair_claim(by, "scaling", "GII adds accuracy at 4 interventions (against 0)", "gii_4", "gii_0",
                          n_boot)
    claims += _pair_claim(by, "scaling", "GII beats budget forcing at 4 interventions", "gii_4",
                          "budget_forcing_4", n_boot, paper_table="table2",
                          paper_rows=("reasonbridge", "budget_forcing"),
                          detail="paper: Table 2's full method against its budget-forcing row")
    claims += _across(by, "table1", "ReasonBridge gains hold across student sizes", "reasonbridge_no_gii", "base",
                      n_boot, by="model")
    claims += _across(by, "table4", "ReasonBridge gains carry over to new tasks", "reasonbridge_no_gii", "base",
                      n_boot, by="column")
    return claims


def _fmt(e: Estimate | None) -> str:
    return "not run" if e is None else f"{e.value:+.1f} [{e.lo:+.1f}, {e.hi:+.1f}]"


def claims_markdown(claims: list[Verdict]) -> list[str]:
    if not claims:
        return []
    out = ["| Claim | Paper | Ours (Δ points, 95% CI) | Verdict | From |", "|---|---:|---:|---|---|"]
    for c in claims:
        paper = "—" if c.paper is None else f"{c.paper:+.1f}"
        who = f" ({c.model})" if c.model else ""
        out.append(f"| {c.claim}{who} | {paper} | {_fmt(c.ours)} | **{c.verdict}** | {c.source} |")
    details = [f"- {c.claim}{f' ({c.model})' if c.model else ''}: {c.detail}" for c in claims if c.detail]
    out += ["", "Verdicts follow each paired 95% bootstrap interval: *holds* when it clears the claim's "
            "threshold (0, or −3 points for \"close to\"), *does not hold* when it lies wholly on the other side, "
            "*within noise* when it straddles it. Paper: the same difference in the paper's tables (AIME 2024 "
            "column for Table 2 and Figure 4; the smallest of the five students for Table 1; for a task the paper's "
            "Table 4 lacks, the smallest of its five transfer gains)."]
    if any(c.model and c.model.startswith("tiny") for c in claims) or any("tiny" in c.detail for c in claims):
        out += ["", "On the model organism (model=tiny*) a verdict says whether the mechanism moves accuracy in a "
                "closed world of indexed arithmetic with a student of under a few million parameters; it does "
                "not say what the same part does for a 7B-14B student on AIME (docs/organism.md)."]
    if details:
        out += ["", *details]
    return out


def write_claims(claims: list[Verdict], out_dir: Path) -> list[Path]:
    md, csv_path = out_dir / "claims.md", out_dir / "claims.csv"
    md.write_text("\n".join(["# Claims of the paper, tested by the runs", "", *claims_markdown(claims)]) + "\n")
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["claim", "model", "source", "paper", "ours", "ci_lo", "ci_hi", "verdict", "runs"])
        for c in claims:
            e = c.ours
            w.writerow([c.claim, c.model or "", c.source, "" if c.paper is None else c.paper,
                        "" if e is None else round(e.value, 2), "" if e is None else round(e.lo, 2),
                        "" if e is None else round(e.hi, 2), c.verdict, " ".join(c.runs)])
    return [md, csv_path]
