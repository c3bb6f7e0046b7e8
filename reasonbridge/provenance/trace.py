"""Trace a set of written outputs under T, S and D: one row per sentence, and the shares."""
from __future__ import annotations

from reasonbridge.provenance.categories import CATEGORIES, categorize, shares
from reasonbridge.provenance.split import PARTS, split_sentences


def items_of(outputs: list[dict]) -> list[dict]:
    """``outputs``: ``{id, problem, instruction, text, ...}``; adds the sentences and their spans."""
    items = []
    for o in outputs:
        sentences = split_sentences(o["text"])
        items.append({**o, "sentences": sentences, "spans": [(s["start"], s["end"]) for s in sentences]})
    return items


def trace(outputs: list[dict], scorers: dict, *, alpha: float, beta: float) -> list[dict]:
    """``scorers``: {"T": ..., "S": ..., "D": ...}. Rows: id, sentence, part, p_T, p_S, p_D, category,
    plus ``correct`` when the output has it. A sentence some model gave no token is left out."""
    items = items_of(outputs)
    probs = {name: scorer.score(items) for name, scorer in scorers.items()}
    rows = []
    for i, item in enumerate(items):
        for k, sentence in enumerate(item["sentences"]):
            p = {name: probs[name][i][k] for name in ("T", "S", "D")}
            if any(v is None for v in p.values()):
                continue
            row = {"id": item["id"], "sample": item.get("sample", 0), "sentence": sentence["text"],
                   "part": sentence["part"], "p_T": p["T"], "p_S": p["S"], "p_D": p["D"],
                   "category": categorize(p["T"], p["S"], p["D"], alpha=alpha, beta=beta)}
            if "correct" in item:
                row["correct"] = bool(item["correct"])
            rows.append(row)
    return rows


def metrics(rows: list[dict], label: str | None = None) -> dict[str, float]:
    """``provenance/<category>``, ``provenance/correct|wrong/<category>``, ``provenance/<part>/<category>``
    (``/<label>`` appended when given: several benchmarks in one run) and ``provenance/sentences``."""
    suffix = f"/{label}" if label else ""
    out = {f"provenance/{c}{suffix}": v for c, v in shares(rows).items()}
    out[f"provenance/sentences{suffix}"] = float(len(rows))
    for verdict, keep in (("correct", True), ("wrong", False)):
        group = [r for r in rows if r.get("correct") is keep]
        if group:
            out.update({f"provenance/{verdict}/{c}{suffix}": v for c, v in shares(group).items()})
    for part in PARTS:
        group = [r for r in rows if r["part"] == part]
        if group:
            out.update({f"provenance/{part}/{c}{suffix}": v for c, v in shares(group).items()})
    return out


__all__ = ["CATEGORIES", "items_of", "metrics", "trace"]
