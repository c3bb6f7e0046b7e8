"""BRIDGE's budgeted subset (arXiv 2512.20403, phase 1): which problems of the pool the paid teacher
answers, chosen at zero teacher cost from a teacher assistant's signals. Pure functions over arrays,
so each criterion can be tested apart from any model."""
from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np


def budget_count(budget: float, pool_size: int) -> int:
    """`bridge.budget` as a number of problems: a fraction of the pool up to 1 (rounded, at least
    one; 1.0 is the whole pool), a count above; never more than the pool."""
    n = max(1, round(budget * pool_size)) if budget <= 1 else int(budget)
    return min(n, pool_size)


def answer_entropy(answers: list[str | None]) -> float:
    """Entropy (nats) of the sampled answers' distribution; no answer counts as one more answer."""
    counts = Counter("<none>" if a is None else a for a in answers)
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


def select_subset(n: int, k: int, *, seed: int, entropy: np.ndarray | None = None,
                  embeddings: np.ndarray | None = None) -> list[int]:
    """Exactly ``k`` of ``n`` indices (in selection order).

    neither criterion: a seeded random sample (direct distillation's budgeted baseline);
    entropy only: the ``k`` most uncertain for the TA (ties broken at random, seeded);
    embeddings only: greedy k-center (each pick the point farthest from those chosen, which covers
    the embedding space; the first pick is seeded);
    both: greedy k-center whose distances are weighted by (1 + normalised entropy), so coverage
    picks, among comparably uncovered regions, the problems the TA is least sure of."""
    if not 0 < k <= n:
        raise ValueError(f"a subset of {k} from {n} problems")
    rng = random.Random(seed)
    if entropy is None and embeddings is None:
        return rng.sample(range(n), k)
    if embeddings is None:
        jitter = [rng.random() for _ in range(n)]
        return sorted(range(n), key=lambda i: (-float(entropy[i]), jitter[i]))[:k]
    x = np.asarray(embeddings, dtype=np.float64)
    weight = np.ones(n)
    if entropy is not None:
        e = np.asarray(entropy, dtype=np.float64)
        weight = 1.0 + (e / e.max() if e.max() > 0 else 0.0)
        first = int(np.argmax(e + 1e-9 * np.array([rng.random() for _ in range(n)])))
    else:
        first = rng.randrange(n)
    chosen = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    dist[first] = -1.0
    while len(chosen) < k:
        nxt = int(np.argmax(np.where(dist >= 0, dist * weight, -1.0)))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
        dist[chosen] = -1.0
    return chosen


def coverage_radius(embeddings: np.ndarray, chosen: list[int]) -> float:
    """The farthest any pool point is from its nearest chosen point (k-center's objective)."""
    x = np.asarray(embeddings, dtype=np.float64)
    d = np.linalg.norm(x[:, None, :] - x[None, chosen, :], axis=2)
    return float(d.min(axis=1).max())
