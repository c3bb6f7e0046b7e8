"""Which code made a table's cells. Every run tags, per stage, the fingerprint of the code that made
its artifact (`code/<stage>`) and the commit (`made_by/<stage>`); a stage's fingerprint does not
depend on the row's config, so within one table a stage with two fingerprints means two code
states. Such a table gets a note naming them, and every row with a run from a minority state a ‡
(re-running those rows recomputes only the stages whose code changed); a table from one code state
gets a note of the commits its cells were computed at."""
from __future__ import annotations

from collections import Counter

from reasonbridge.report.runs import RunRecord
from reasonbridge.report.tables import BuiltTable

MARK = "‡"


def _runs_text(n: int) -> str:
    return f"{n} run" + ("s" if n != 1 else "")
UNRECORDED = "unrecorded"  # a run from before code fingerprints were tagged


def _table_runs(table: BuiltTable) -> dict[str, RunRecord]:
    return {r.run_id: r for line in table.lines for cell in line.cells for r in cell.runs}


def _state(run: RunRecord) -> dict[str, str]:
    """The run's code state: stage -> fingerprint, plus whether it recorded any (key `*`)."""
    return {**run.code, "*": "recorded" if run.code else UNRECORDED}


def odd_runs(runs: list[RunRecord]) -> tuple[set[str], dict[str, Counter]]:
    """(ids of the runs made by other code than most, {stage: Counter(fingerprint)} of the stages made
    by more than one code state; `*`: runs with and without recorded fingerprints)."""
    if not any(r.code for r in runs):
        return set(), {}
    by_stage: dict[str, Counter] = {}
    for r in runs:
        for stage, fp in _state(r).items():
            by_stage.setdefault(stage, Counter())[fp] += 1
    mixed = {s: c for s, c in by_stage.items() if len(c) > 1}
    odd = {r.run_id for r in runs for s, c in mixed.items()
           if s in _state(r) and _state(r)[s] != c.most_common(1)[0][0]}
    return odd, mixed


def mark_code_states(table: BuiltTable) -> None:
    """Mark the rows of ``table`` computed by other code than the rest, and note the code states and
    the commits its cells come from."""
    runs = _table_runs(table)
    if not runs:
        return
    odd, mixed = odd_runs(list(runs.values()))
    if mixed:
        for line in table.lines:
            if any(r.run_id in odd for cell in line.cells for r in cell.runs):
                line.label = f"{line.label} {MARK}"
        states = "; ".join(f"{'fingerprints' if s == '*' else s}: "
                           + ", ".join(f"{fp} ({_runs_text(n)})" for fp, n in c.most_common())
                           for s, c in sorted(mixed.items()))
        table.notes.append(f"{MARK} computed by other code than the rest of this table ({states}): its cells "
                           "come from more than one code state; re-run the marked rows (the stage cache "
                           "recomputes only the stages whose code changed)")
    commits = Counter(c.removesuffix("+dirty")[:12] + ("+dirty" if c.endswith("+dirty") else "")
                      for r in runs.values() for c in set(r.made_by.values()))
    if commits:
        table.notes.append("cells computed at commit" + ("s " if len(commits) > 1 else " ")
                           + ", ".join(f"{c} ({_runs_text(n)})" for c, n in commits.most_common()))
