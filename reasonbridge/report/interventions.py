"""What the interventions did, beside the test-time scaling figure: per strategy and count, how
often one fired and how often the answer went wrong -> right or right -> wrong against the same
student without interventions (MLflow metrics `interventions/{fired,fixed,broke}/<benchmark>`)."""
from __future__ import annotations

from reasonbridge.report.tables import BuiltTable

KINDS = ("fired", "fixed", "broke")


def intervention_lines(table: BuiltTable) -> list[str]:
    """A Markdown section (empty when no run logged the comparison)."""
    rows = []
    for line in table.lines:
        for col, cell in zip(table.columns, line.cells):
            values = {}
            for kind in KINDS:
                got = [r.metrics[f"interventions/{kind}/{col.key}"] for r in cell.runs
                       if f"interventions/{kind}/{col.key}" in r.metrics]
                values[kind] = 100 * sum(got) / len(got) if got else None
            if values["fired"] is not None:
                net = values["fixed"] - values["broke"]
                rows.append(f"| {line.label} | {line.interventions} | {col.header} | {values['fired']:.1f} | "
                            f"{values['fixed']:.1f} | {values['broke']:.1f} | {net:+.1f} | {len(cell.runs)} |")
    if not rows:
        return []
    return ["", "## What the interventions did", "",
            "Against the same trained student without interventions, under the same thinking budget "
            "(% of problems, mean over seeds): fired = at least one intervention; fixed = wrong -> right; "
            "broke = right -> wrong; net = fixed - broke.", "",
            "| strategy | interventions | benchmark | fired | fixed | broke | net | seeds |",
            "|---|---:|---|---:|---:|---:|---:|---:|", *rows]
