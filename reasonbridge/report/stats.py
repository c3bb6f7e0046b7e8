"""Bootstrap confidence intervals over problems (and over seeds when there are several).

The mean of a resample depends only on how many times each distinct score is drawn, so a
resample of n scores with U distinct values is one multinomial draw over U cells: exact,
and cheap enough to bootstrap every cell of a thousand runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Estimate:
    value: float
    lo: float
    hi: float


def _resampled_means(scores: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    values, counts = np.unique(scores, return_counts=True)
    n = scores.size
    # the multinomial as a chain of binomials: one vectorised draw per distinct value
    # (Generator.multinomial with a size is an order of magnitude slower for a handful of cells)
    left = np.full(n_boot, n)
    total = np.zeros(n_boot)
    remaining = 1.0
    for value, count in zip(values[:-1], counts[:-1]):
        p = count / n
        drawn = rng.binomial(left, min(1.0, p / remaining))
        total += drawn * value
        left -= drawn
        remaining -= p
    total += left * values[-1]
    return total / n


def bootstrap_means(groups: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the mean over groups (seeds) of each group's mean score.

    One group: resample problems. Several: resample seeds, then problems within each seed.
    """
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        raise ValueError("no scores to bootstrap")
    per_group = np.stack([_resampled_means(g, n_boot, rng) for g in groups])  # (seeds, n_boot)
    if len(groups) == 1:
        return per_group[0]
    picks = rng.integers(len(groups), size=(n_boot, len(groups)))
    return per_group[picks, np.arange(n_boot)[:, None]].mean(axis=1)


def _interval(value: float, replicates: np.ndarray, level: float) -> Estimate:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(float(value), float(lo), float(hi))


def mean_ci(groups: list[np.ndarray], n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean over seeds of the mean score, with a percentile bootstrap interval."""
    rng = np.random.default_rng(seed)
    value = float(np.mean([np.mean(g) for g in groups if len(g)]))
    return _interval(value, bootstrap_means(groups, n_boot, rng), level)


def delta_ci(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], n_boot: int = 2000,
             level: float = 0.95, seed: int = 0) -> Estimate:
    """Difference of means a - b; inputs are seed -> {problem id: score}.

    Paired over the problems both rows answered under the same seed (the same benchmark
    problems), else the two bootstraps are independent.
    """
    rng = np.random.default_rng(seed)
    paired = []
    for s in sorted(set(a) & set(b)):
        ids = sorted(set(a[s]) & set(b[s]))
        if ids:
            paired.append(np.array([a[s][i] - b[s][i] for i in ids]))
    if paired and len(paired) == len(set(a) | set(b)):
        value = float(np.mean([d.mean() for d in paired]))
        return _interval(value, bootstrap_means(paired, n_boot, rng), level)
    ga = [np.fromiter(v.values(), float) for v in a.values()]
    gb = [np.fromiter(v.values(), float) for v in b.values()]
    value = float(np.mean([g.mean() for g in ga]) - np.mean([g.mean() for g in gb]))
    return _interval(value, bootstrap_means(ga, n_boot, rng) - bootstrap_means(gb, n_boot, rng), level)
