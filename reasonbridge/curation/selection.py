"""Data variants: which teacher traces the student is trained on (`data` group)."""
from __future__ import annotations

import random


def select_traces(traces: list[dict], name: str, *, size: int | None, seed: int) -> tuple[list[dict], dict]:
    """Return the selected traces and a manifest with the counts after each step."""
    parsed = [t for t in traces if t.get("text")]
    manifest = {"variant": name, "seed": seed, "pool": len(traces), "parsed": len(parsed)}
    if name == "full":
        selected = parsed
    elif name == "random":
        if size > len(parsed):
            raise ValueError(f"data=random asks for data.size={size} but only {len(parsed)} traces exist "
                             f"(counts: {manifest})")
        ordered = sorted(parsed, key=lambda t: t["problem_id"])
        selected = random.Random(seed).sample(ordered, size)
    else:
        raise ValueError(f"unknown data variant {name!r}")
    manifest["selected"] = len(selected)
    return selected, manifest
