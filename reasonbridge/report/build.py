"""Build the whole report: runs from MLflow -> tables, figure and index under reports/."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.tracking import MlflowClient

from reasonbridge.report.accounting import RunCount, count_runs
from reasonbridge.report.claims import build_claims, claims_markdown, write_claims
from reasonbridge.report.interventions import intervention_lines
from reasonbridge.report.provenance import mark_code_states
from reasonbridge.report.provenance_shares import SOURCE as PROVENANCE_SOURCE, write_provenance
from reasonbridge.report.render import plot_scaling, write_csv, write_index, write_latex, write_markdown
from reasonbridge.report.runs import fetch_runs, load_predictions
from reasonbridge.report.specs import load_specs
from reasonbridge.report.tables import BuiltTable, build_table, predictions_needed
from reasonbridge.tracking.mlflow_run import resolve_tracking_uri

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ReportSummary:
    uri: str
    runs: int
    tables: list[BuiltTable]
    files: list[Path]
    seconds: float
    count: RunCount = field(default_factory=RunCount)  # runs read, used, and why the rest were left out


def configured_uri() -> str | None:
    """tracking.uri from conf/tracking/mlflow.yaml (the environment variable still wins)."""
    from omegaconf import OmegaConf
    path = ROOT / "conf" / "tracking" / "mlflow.yaml"
    return OmegaConf.load(path).get("uri") if path.exists() else None


def build_report(out_dir: Path = ROOT / "reports", experiments_dir: Path = ROOT / "experiments",
                 tracking_uri: str | None = None, tables: list[str] | None = None, n_boot: int = 2000,
                 workers: int = 8) -> ReportSummary:
    start = time.perf_counter()
    budget = tables is None or "bridge" in tables  # the budget curve has no table definition of its own
    named = [t for t in tables if t != "bridge"] if tables is not None else None
    # a broken definition fails before anything is written
    specs = load_specs(experiments_dir, named) if named != [] else []
    uri = tracking_uri or resolve_tracking_uri(configured_uri())
    client = MlflowClient(tracking_uri=uri)
    runs = fetch_runs(client, {s for spec in specs for s in spec.sources})
    load_predictions(client, predictions_needed(specs, runs), workers=workers)
    out_dir.mkdir(parents=True, exist_ok=True)
    built, files, figures = [], [], []
    for spec in specs:
        table = build_table(spec, runs, n_boot=n_boot)
        mark_code_states(table)
        built.append(table)
        for suffix, writer in ((".md", write_markdown), (".tex", write_latex), (".csv", write_csv)):
            path = out_dir / f"{spec.name}{suffix}"
            writer(table, path)
            files.append(path)
        if spec.kind == "scaling":
            figures += plot_scaling(table, out_dir)
            extra = intervention_lines(table)
            if extra:
                md = out_dir / f"{spec.name}.md"
                md.write_text(md.read_text() + "\n".join(extra) + "\n")
    if budget:  # the budget curve (issue 24): its own figure and table
        from reasonbridge.report.budget import build_budget_report
        budget_files = build_budget_report(client, out_dir, n_boot=n_boot, workers=workers)
        figures += budget_files[:2]
        files += budget_files[2:]
    if tables is None:  # sentence provenance of every run that traced it (experiment=provenance and tables)
        traced = {r.run_id: r for r in runs + fetch_runs(client, {PROVENANCE_SOURCE})}
        figures += write_provenance(list(traced.values()), out_dir)
    claims = build_claims(built, n_boot=n_boot)
    files += write_claims(claims, out_dir)
    write_index(built, figures, out_dir, uri, len(runs), claims=claims_markdown(claims))
    files += figures + [out_dir / "README.md"]
    used = {r.run_id for t in built for line in t.lines for c in line.cells for r in c.runs}
    return ReportSummary(uri, len(runs), built, files, time.perf_counter() - start,
                         count_runs(client, specs, runs, used))
