"""Stage `data`: the traces the data variant keeps (quality, difficulty, diversity filters, size)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import read_jsonl, write_jsonl
from reasonbridge.stages.context import RunContext, config_slice

log = logging.getLogger("reasonbridge.pipeline")


def data(ctx: RunContext, traces: StageResult, attempts: dict[str, StageResult]) -> StageResult:
    cfg = ctx.cfg
    data_slice = config_slice(cfg.data)
    if not cfg.data.difficulty:  # references matter only to the difficulty filter
        data_slice = {k: v for k, v in data_slice.items() if not k.startswith("reference")}
    elif data_slice["reference_max_new_tokens"] is None:  # keyed on the budgets the references get
        from reasonbridge.config import reference_max_new_tokens
        budgets = {r.name: reference_max_new_tokens(cfg, r) for r in cfg.data.references}
        one = set(budgets.values())
        data_slice["reference_max_new_tokens"] = one.pop() if len(one) == 1 else budgets
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
    res = ctx.stage("data", config, upstream, compute)
    warn_if_quality_rejects_most(json.loads((res.path / "manifest.json").read_text()))
    return res


# a quality filter that rejects more than this share of a teacher's traces is more likely misreading
# the teacher's format than catching that many defects: the run says so, with the reasons
MOST_REJECTED = 0.5


def warn_if_quality_rejects_most(manifest: dict) -> None:
    counts = manifest["counts"]
    if "rejections" not in manifest or not counts.get("parsed"):
        return
    share = 1 - counts["after_quality"] / counts["parsed"]
    if share > MOST_REJECTED:
        reasons = sorted(manifest["rejections"]["by_reason"].items(), key=lambda kv: -kv[1])
        log.warning("the quality filter rejected %.0f%% of %d traces (by reason: %s); check a few in the "
                    "manifest's rejections before trusting the curated set", 100 * share, counts["parsed"],
                    ", ".join(f"{r} {n}" for r, n in reasons))
