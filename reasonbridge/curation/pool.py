"""Problem pools and the held-out synthetic benchmark.

The synthetic problem space is split by a hash of each problem's text: one tenth is
reserved for evaluation ("heldout"), the rest feeds the pool and the tiny student's
pre-training ("train"). Pool and benchmark therefore never share a problem, whatever
their sizes and seeds; the pool stage still checks it and logs the count.

Real pools come from local JSONL / parquet files through a field map, merged, with exact and
near duplicates removed and every problem that shares a word n-gram with an evaluation
benchmark dropped (`clean_pool`).
"""
from __future__ import annotations

import hashlib
import re
import zlib
from pathlib import Path
from typing import Iterator

from reasonbridge.curation import organism
from reasonbridge.curation.synthetic import generate_problems
from reasonbridge.io import DataError, iter_jsonl
from reasonbridge.problems import SUBJECT_TO_MSC

HELDOUT_SHARE = 10  # 1 in 10 problem texts belongs to the held-out split


def split_of(problem_text: str) -> str:
    digest = hashlib.sha256(problem_text.encode()).digest()
    return "heldout" if digest[0] % HELDOUT_SHARE == 0 else "train"


def generate_split(n: int, *, seed: int, split: str, id_prefix: str, difficulties=(1, 5),
                   max_operand: int = 20, domains=None, max_rounds: int = 200, suite: str = "word_problems",
                   stratified: bool = False, mix: int = 1) -> list[dict]:
    """`n` distinct synthetic problems from one side of the split, deterministic in `seed`
    (`stratified`, organism only: equal counts per difficulty and domain; `mix`, organism only:
    operation words of that many domains in one problem)."""
    if suite == "organism":
        return organism.generate(n, seed, difficulties=difficulties, domains=domains, id_prefix=id_prefix,
                                 keep=lambda text: split_of(text) == split, stratified=stratified, mix=mix)
    if mix != 1:
        raise ValueError("mixing domains' words in one problem (benchmark.mix) is an organism suite option")
    out: list[dict] = []
    seen: set[str] = set()
    for round_ in range(max_rounds):
        batch = generate_problems(max(64, 2 * n), seed=seed * 1000 + round_, domains=domains,
                                  difficulties=tuple(difficulties), max_operand=max_operand, id_prefix=id_prefix)
        for p in batch:
            if p["problem"] in seen or split_of(p["problem"]) != split:
                continue
            seen.add(p["problem"])
            out.append({**p, "id": f"{id_prefix}-{p['domain']}-{len(out):06d}"})
            if len(out) == n:
                return out
    raise RuntimeError(f"could only generate {len(out)} of {n} distinct {split!r} problems; "
                       "widen pool.max_operand / difficulties or lower the size")


def synthetic_benchmark(size: int, *, seed: int, difficulties, max_operand: int, domains,
                        suite: str = "word_problems", mix: int = 1, id_prefix: str = "bench") -> list[dict]:
    return generate_split(size, seed=seed + 101, split="heldout", id_prefix=id_prefix, difficulties=difficulties,
                          max_operand=max_operand, domains=domains, suite=suite, stratified=True, mix=mix)


def problems_of_kind(problems: list[dict], *, domains, difficulties, mix: int) -> int:
    """How many of ``problems`` are of a generated benchmark's kind: one of its domains (any when
    null), within its difficulties, and mixing domains' words exactly when it does."""
    codes = {str(d) for d in domains} if domains else None
    lo, hi = difficulties
    return sum(1 for p in problems
               if (codes is None or str(p.get("domain")) in codes) and lo <= int(p.get("difficulty") or 0) <= hi
               and bool(p.get("mixed_domains")) == (mix > 1))


def held_out_pool_suite(suite: dict, domains: list[str], min_steps: int | None, all_domains) -> dict:
    """The suite's generator arguments with `pool.hold_out` applied: the held-out domains and every
    difficulty from `min_steps` up left out, so no pool problem is of a held-out kind."""
    out = dict(suite)
    if domains:
        keep = [d for d in (suite["domains"] or sorted(all_domains)) if d not in {str(x) for x in domains}]
        if not keep:
            raise ValueError(f"pool.hold_out.domains={list(domains)} leaves the pool no domain")
        out["domains"] = keep
    if min_steps is not None:
        lo, hi = suite["difficulties"]
        out["difficulties"] = [lo, min(hi, min_steps - 1)]
    return out


def synthetic_pool(size: int, *, seed: int, difficulties, max_operand: int, domains,
                   exclude_texts: set[str], suite: str = "word_problems") -> tuple[list[dict], int]:
    """The pool, with any problem whose text appears in an evaluation benchmark removed."""
    problems = generate_split(size, seed=seed + 202, split="train", id_prefix="pool", suite=suite,
                              difficulties=difficulties, max_operand=max_operand, domains=domains)
    kept = [p for p in problems if p["problem"] not in exclude_texts]
    return kept, len(problems) - len(kept)


# -- local files --------------------------------------------------------------------------
CANONICAL_FIELDS = ("id", "problem", "answer", "domain", "source")


def _rows_of(path: Path) -> Iterator[tuple[int, dict]]:
    """(line or row number, record) of a .jsonl or .parquet file."""
    if path.suffix == ".parquet":
        import pandas as pd
        for i, row in enumerate(pd.read_parquet(path).to_dict(orient="records"), 1):
            yield i, row
    else:
        yield from enumerate(iter_jsonl(path), 1)  # iter_jsonl names file:line on bad JSON


def load_problem_files(paths: list[str], fields: dict[str, str], *, answer_regex: str | None = None,
                       base_dir: Path | None = None) -> list[dict]:
    """Problems from local files, mapped through ``fields`` (canonical name -> file field).

    A missing required field names the file, the row and the field; ids are prefixed with
    the file's stem so merged sources never collide.
    """
    unknown = set(fields) - set(CANONICAL_FIELDS)
    if unknown:
        raise DataError(f"pool.fields: unknown canonical field(s) {sorted(unknown)}; expected {CANONICAL_FIELDS}")
    pattern = re.compile(answer_regex, re.MULTILINE) if answer_regex else None
    problems: list[dict] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.exists():
            raise DataError(f"pool.paths: {path} does not exist")
        for lineno, row in _rows_of(path):
            where = f"{path}:{lineno}"
            rec = {}
            for canon, src in fields.items():
                if src is None:  # not mapped
                    continue
                if src not in row or (row[src] is None and canon in ("problem", "answer")):
                    raise DataError(f"{where}: missing field {src!r} (mapped to {canon!r} by pool.fields)")
                if row[src] is None:  # an optional field left empty in this row
                    continue
                rec[canon] = str(row[src]).strip()
            if pattern is not None:
                m = pattern.search(rec["answer"])
                if not m:
                    raise DataError(f"{where}: field {fields['answer']!r} does not match pool.answer_regex")
                rec["answer"] = (m.group(1) if m.groups() else m.group(0)).strip()
            text_id = hashlib.sha256(rec["problem"].encode()).hexdigest()[:12]
            domain = rec.get("domain")
            domain = SUBJECT_TO_MSC.get(domain.lower(), domain) if domain else None
            problems.append({"id": f"{path.stem}-{rec.get('id', text_id)}", "problem": rec["problem"],
                             "answer": rec["answer"], "domain": domain, "source": rec.get("source", path.stem),
                             "difficulty": None, "meta": {"file": str(path), "row": lineno}})
    return problems


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- duplicates and contamination ---------------------------------------------------------
def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: what exact duplicates share."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalize_text(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def remove_exact_duplicates(problems: list[dict]) -> tuple[list[dict], int]:
    """First occurrence of each normalized problem text."""
    seen: set[str] = set()
    kept = []
    for p in problems:
        key = normalize_text(p["problem"])
        if key not in seen:
            seen.add(key)
            kept.append(p)
    return kept, len(problems) - len(kept)


def remove_near_duplicates(problems: list[dict], threshold: float, *, shingle: int = 5,
                           bands: int = 16, rows: int = 4) -> tuple[list[dict], int]:
    """Drop problems whose word ``shingle``-gram Jaccard similarity with an earlier kept one is
    at least ``threshold``. MinHash LSH (``bands`` x ``rows``) proposes candidate pairs, the exact
    Jaccard decides, so the result does not depend on hashing luck beyond recall."""
    import numpy as np

    if threshold >= 1.0:
        return problems, 0
    n_perm = bands * rows
    rng = np.random.default_rng(12345)
    prime = (1 << 61) - 1
    a = rng.integers(1, prime, n_perm, dtype=np.uint64)
    b = rng.integers(0, prime, n_perm, dtype=np.uint64)
    shingles = []
    for p in problems:
        grams = word_ngrams(p["problem"], shingle) or {tuple(normalize_text(p["problem"]).split())}
        shingles.append(grams)
    buckets: dict[tuple[int, bytes], list[int]] = {}
    kept_idx: list[int] = []
    for i, grams in enumerate(shingles):
        h = np.array([zlib.crc32(" ".join(g).encode()) for g in grams], dtype=np.uint64)
        sig = ((np.outer(h, a) + b) % np.uint64(prime)).min(axis=0) if len(h) else np.zeros(n_perm, np.uint64)
        keys = [(band, sig[band * rows:(band + 1) * rows].tobytes()) for band in range(bands)]
        candidates = {j for k in keys for j in buckets.get(k, ())}
        if any(len(grams & shingles[j]) / max(1, len(grams | shingles[j])) >= threshold for j in candidates):
            continue
        kept_idx.append(i)
        for k in keys:
            buckets.setdefault(k, []).append(i)
    return [problems[i] for i in kept_idx], len(problems) - len(kept_idx)


def decontaminate(problems: list[dict], benchmark_texts: list[str], n: int) -> tuple[list[dict], int]:
    """Drop pool problems sharing any word ``n``-gram (or the whole text, if shorter) with a benchmark
    problem, as s1 does with 8-grams."""
    bench_grams: set[tuple[str, ...]] = set()
    bench_short: set[str] = set()
    for text in benchmark_texts:
        grams = word_ngrams(text, n)
        bench_grams |= grams
        if not grams:
            bench_short.add(normalize_text(text))
    kept = [p for p in problems
            if not (word_ngrams(p["problem"], n) & bench_grams) and normalize_text(p["problem"]) not in bench_short]
    return kept, len(problems) - len(kept)


def clean_pool(problems: list[dict], benchmark_texts: list[str] | dict[str, list[str]], *, near_dup_threshold: float,
               ngram: int) -> tuple[list[dict], dict]:
    """Exact dedup, near dedup, decontamination; returns the kept problems and the counts. With
    ``benchmark_texts`` by benchmark, ``decontaminated_by`` counts the deduplicated problems that
    overlap each (a problem overlapping two benchmarks counts for both)."""
    by_benchmark = benchmark_texts if isinstance(benchmark_texts, dict) else None
    texts = [t for ts in by_benchmark.values() for t in ts] if by_benchmark is not None else benchmark_texts
    counts: dict = {"loaded": len(problems)}
    problems, counts["exact_duplicates"] = remove_exact_duplicates(problems)
    problems, counts["near_duplicates"] = remove_near_duplicates(problems, near_dup_threshold)
    if by_benchmark is not None:
        counts["decontaminated_by"] = {name: decontaminate(problems, ts, ngram)[1] for name, ts in by_benchmark.items()}
    problems, counts["decontaminated"] = decontaminate(problems, texts, ngram)
    counts["kept"] = len(problems)
    return problems, counts
