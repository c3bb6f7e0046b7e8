"""The three Reason1K filters (paper §3.1): quality, difficulty, diversity.

- quality: rule checks on a trace's text, each rejection with its reasons (`quality.py`);
- difficulty: keep the problems that every reference model fails (attempts come from the
  pipeline's cached `attempts` stage, judged by the project's answer checker);
- diversity: s1's sampling, made repeatable: draw a domain uniformly among those with problems
  left, then a problem within it with weight 2^-rank of its trace length (longest = rank 0),
  until the target size.
"""
from __future__ import annotations

import random
import re
from collections import Counter, defaultdict

# quality lives in quality.py; its names stay importable from here
from reasonbridge.curation.quality import (CORRECTION_CUES, REASONS, operation_holds, quality_filter,  # noqa: F401
                                           quality_reasons, uncorrected_errors, written_operations)
from reasonbridge.problems import DEFAULT_DOMAIN, MSC_CODES


# -- difficulty ----------------------------------------------------------------------------
def difficulty_filter(traces: list[dict], attempts: dict[str, dict[str, bool]]) -> tuple[list[dict], dict]:
    """Keep traces whose problem every reference model failed.

    ``attempts`` maps reference name -> problem id -> solved. A problem some reference never
    attempted is an error: silently keeping or dropping it would bias the selection.
    """
    kept, solved_by = [], Counter()
    for t in traces:
        solved = []
        for ref, results in attempts.items():
            if t["problem_id"] not in results:
                raise KeyError(f"reference model {ref!r} has no attempt at problem {t['problem_id']!r}")
            if results[t["problem_id"]]:
                solved.append(ref)
        solved_by.update(solved)
        if not solved:
            kept.append(t)
    return kept, {"solved_by": dict(solved_by)}


# -- diversity -----------------------------------------------------------------------------
# Rule-based MSC classifier for problems without a domain: the first rule whose keywords match.
DOMAIN_RULES: list[tuple[str, re.Pattern]] = [
    ("60", re.compile(r"\b(probability|chance|expected|die|dice|coin|spinner|random|at random)\b", re.I)),
    ("05", re.compile(r"\b(how many ways|arrange|arrangements|choose|outfits|permutations?|combinations?)\b", re.I)),
    ("11", re.compile(r"\b(remainder|divisible|prime|gcd|greatest common|multiples?|digits?|modulo)\b", re.I)),
    ("51", re.compile(r"\b(area|perimeter|triangle|rectangle|circle|square|angle|polygon|radius)\b", re.I)),
    ("40", re.compile(r"\b(sequence|term|arithmetic progression|geometric progression|series)\b", re.I)),
    ("15", re.compile(r"\b(solve|equation|matrix|system of|linear)\b|(?<![A-Za-z])[a-z]\s*[-+=]\s*\d")),
]


def classify_domain(problem_text: str) -> str:
    """MSC two-digit code for a problem without one (rule-based)."""
    for code, pattern in DOMAIN_RULES:
        if pattern.search(problem_text):
            return code
    return DEFAULT_DOMAIN


def diversity_sample(traces: list[dict], size: int, *, seed: int) -> list[dict]:
    """s1-style selection: domain uniform, then 2^-rank of trace length within it; seeded.

    Length is counted in words, and equal lengths share a rank (the rank of the length among the
    domain's remaining distinct lengths). Ties are ordered by problem id, so the result depends
    only on the inputs and the seed.
    """
    rng = random.Random(seed)
    by_domain: dict[str, list[tuple[int, dict]]] = defaultdict(list)  # (words, trace), counted once
    for t in traces:
        by_domain[t["domain"] or classify_domain(t["problem"])].append((len(t["text"].split()), t))
    for items in by_domain.values():
        items.sort(key=lambda item: (-item[0], item[1]["problem_id"]))
    selected: list[dict] = []
    while len(selected) < size and by_domain:
        domain = rng.choice(sorted(by_domain))
        items = by_domain[domain]
        rank = {n: r for r, n in enumerate(sorted({n for n, _ in items}, reverse=True))}
        weights = [2.0 ** -rank[n] for n, _ in items]
        selected.append(items.pop(rng.choices(range(len(items)), weights=weights)[0])[1])
        if not items:
            del by_domain[domain]
    return selected



def domain_prompt(problem_text: str) -> list[dict[str, str]]:
    codes = "\n".join(f"{code}: {name}" for code, name in MSC_CODES.items())
    return [{"role": "system", "content": "Classify the math problem by its Mathematics Subject Classification "
                                          "(MSC) two-digit code. Reply with the code only.\n" + codes},
            {"role": "user", "content": problem_text}]


def parse_domain(reply: str) -> str | None:
    """The first MSC code of ``MSC_CODES`` in a classifier's reply, if any."""
    for code in re.findall(r"(?<!\d)(\d{2})(?!\d)", reply or ""):
        if code in MSC_CODES:
            return code
    return None


def classify_domains_with_teacher(problems: list[dict], teacher, cache, budget) -> dict[str, int]:
    """Give every problem without a domain one from the teacher (an LLM, through the teacher cache);
    a reply without a known code falls back to the rules. Records ``meta.domain_by``; returns counts."""
    import json

    from reasonbridge.curation.teacher_cache import query_key

    sampling = {**teacher.sampling, "task": "msc_domain"}
    todo = [p for p in problems if not p.get("domain")]
    jobs, seen = [], set()
    keyed = []
    for p in todo:
        prompt = json.dumps(domain_prompt(p["problem"]), ensure_ascii=False)
        key = query_key(teacher.identity, prompt, sampling)
        keyed.append((p, key))
        if cache.get(key) is None and key not in seen:
            seen.add(key)
            jobs.append((key, p, prompt))
    teacher.run(jobs, cache.append, budget)
    counts = Counter()
    for p, key in keyed:
        code = parse_domain(cache.get(key)["response"]["text"])
        p["domain"] = code or classify_domain(p["problem"])
        p.setdefault("meta", {})["domain_by"] = "teacher" if code else "rules"
        counts["teacher" if code else "rules_fallback"] += 1
    return dict(counts)
