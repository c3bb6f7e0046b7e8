"""Stage `data`: the traces the data variant keeps (quality, difficulty, diversity filters, size)."""
from __future__ import annotations

from pathlib import Path

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import read_jsonl, write_jsonl
from reasonbridge.stages.context import RunContext, config_slice


def data(ctx: RunContext, traces: StageResult, attempts: dict[str, StageResult]) -> StageResult:
    cfg = ctx.cfg
    data_slice = config_slice(cfg.data)
    if not cfg.data.difficulty:  # references matter only to the difficulty filter
        data_slice = {k: v for k, v in data_slice.items() if not k.startswith("reference")}
    config = {"data": data_slice, "seed": cfg.seed}

    def compute(out: Path) -> None:
        from reasonbridge.curation.selection import select_traces
        solved = {name: {a["id"]: a["correct"] for a in read_jsonl(res.path / "attempts.jsonl")}
                  for name, res in attempts.items()}
        selected, manifest = select_traces(read_jsonl(traces.path / "traces.jsonl"), cfg.data, seed=cfg.seed,
                                           attempts=solved if cfg.data.difficulty else None)
        write_jsonl(out / "selected.jsonl", selected)
        write_json_atomic(out / "manifest.json", manifest)
    upstream = {"traces": traces, **{f"attempts/{k}": v for k, v in attempts.items()}}
    return ctx.stage("data", config, upstream, compute)
