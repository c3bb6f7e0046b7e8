"""Data variants of Table 2: which teacher traces the student is trained on (`data` group).

A variant is a set of filter switches and a size: quality -> difficulty -> then, down to
`size`, diversity sampling (s1-style) or uniform sampling (seeded); `size: null` keeps all.
`curated` runs every filter; `no_quality` / `no_difficulty` / `no_diversity` drop one;
`random` and `full` run none. The manifest records the counts after each stage, every
rejection reason, the domain histogram, length statistics, the seed and content hashes.
"""
from __future__ import annotations

import hashlib
import json
import random
import statistics
from collections import Counter

from reasonbridge.curation.filters import diversity_sample, quality_filter, difficulty_filter
from reasonbridge.errors import UserError


class EmptySelection(UserError):
    """A filter left nothing (or too little) to select from; the message has the per-stage counts
    (run.py ends with it as one line, exit 2: the fix is a smaller `data.size` or another variant)."""


def _hash(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


def length_stats(traces: list[dict]) -> dict[str, float]:
    lengths = [len(t["text"]) for t in traces]
    if not lengths:
        return {}
    return {"chars_min": min(lengths), "chars_mean": statistics.fmean(lengths),
            "chars_median": statistics.median(lengths), "chars_max": max(lengths)}


def select_traces(traces: list[dict], data_cfg, *, seed: int,
                  attempts: dict[str, dict[str, bool]] | None = None) -> tuple[list[dict], dict]:
    """Return the selected traces and their manifest. ``data_cfg`` has name, quality, difficulty,
    diversity, size, subsample; ``attempts`` (reference -> problem id -> solved) is needed for difficulty."""
    counts = {"pool": len(traces)}
    size = data_cfg.size if data_cfg.subsample else None
    manifest: dict = {"variant": data_cfg.name, "seed": seed,
                      "filters": {"quality": bool(data_cfg.quality), "difficulty": bool(data_cfg.difficulty),
                                  "diversity": bool(data_cfg.diversity)},
                      "size": size, "counts": counts, "input_sha256": _hash(traces)}

    def check(stage: str, rows: list[dict]) -> None:
        counts[stage] = len(rows)
        if not rows:
            raise EmptySelection(f"data={data_cfg.name}: no trace left after {stage} (counts per stage: {counts})")

    current = sorted((t for t in traces if t.get("text")), key=lambda t: t["problem_id"])
    check("parsed", current)
    if data_cfg.quality:
        current, rejected = quality_filter(current)
        manifest["rejections"] = {"by_reason": dict(Counter(r for x in rejected for r in x["reasons"])),
                                  "problems": rejected}
    check("after_quality", current)
    if data_cfg.difficulty:
        if attempts is None:
            raise ValueError("the difficulty filter needs reference attempts")
        current, info = difficulty_filter(current, attempts)
        manifest["difficulty"] = {"references": sorted(attempts), **info}
    check("after_difficulty", current)
    if size is not None:
        if size > len(current):
            raise EmptySelection(f"data={data_cfg.name} asks for data.size={size} but only {len(current)} traces "
                                 f"passed the filters (counts per stage: {counts}); "
                                 f"set data.size to at most {len(current)}")
        if data_cfg.diversity:
            current = diversity_sample(current, size, seed=seed)
        else:
            current = random.Random(seed).sample(current, size)
    counts["selected"] = len(current)
    manifest["selected"] = len(current)
    manifest["domains"] = dict(sorted(Counter(t["domain"] for t in current).items()))
    manifest["lengths"] = {"selected": length_stats(current),
                           "pool": length_stats([t for t in traces if t.get("text")])}
    manifest["selected_ids"] = [t["problem_id"] for t in current]
    manifest["selected_sha256"] = _hash(current)
    return current, manifest
