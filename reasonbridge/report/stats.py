"""Bootstrap confidence intervals over problems, with seeds as a second level.

Scores come as seed -> {problem id: score}. Two kinds of benchmark:

- **shared problems** (a benchmark file: AIME, MATH-500, GPQA, ...): every seed answers the
  same problems, so a problem is resampled once, with its results under every seed (its mean
  over seeds). Identical seeds then give exactly the one-seed interval, and noisy seeds are
  not counted as new problems.
- **problems per seed** (the organism's generated benchmark, drawn from the run's seed):
  problems are resampled within each seed (a stratified bootstrap) and the seed means averaged.

Either way the problem level already carries the seed-to-seed noise that problems explain. What
they do not explain, a per-seed effect (a training seed that makes a better student), enters as
a second level: its variance is estimated by moments (between-seed variance of the seed means
less what the problems account for, floored at 0), and each replicate adds the mean of S draws
of the seed effects shrunk to that variance. Resampling seeds on top of problems instead would
count problem noise twice (intervals that contain a true Δ of 0 99.8% of the time, not 95%).

A paired Δ pairs on problems *and* seeds: only seeds both rows ran, and under each the
problems both answered; the seeds left out are reported with the estimate.

The mean of a resample depends only on how many times each distinct score is drawn, so a
resample of n scores with U distinct values is one multinomial draw over U cells: exact,
and cheap enough to bootstrap every cell of a thousand runs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

Scores = dict[str, dict[str, float]]  # seed -> {problem id: score}

# Benchmarks generated from the run's seed (curation.pool.synthetic_benchmark; the lm-eval task
# reasonbridge_synthetic serves the same problems): problem ids repeat across seeds, the
# problems do not. Every other benchmark is read from a file or a hub, the same for every seed
# (a seed may shuffle a problem's choices; it is still the same problem).
GENERATED_PER_SEED = ("synthetic", "lm_eval/reasonbridge_synthetic")
GENERATED_PREFIX = "organism_"  # the organism's generalization benchmarks (conf/benchmark/organism_*.yaml)


def problems_shared_across_seeds(benchmark: str) -> bool:
    return benchmark not in GENERATED_PER_SEED and not benchmark.startswith(GENERATED_PREFIX)


@dataclass
class Estimate:
    value: float
    lo: float
    hi: float
    seeds: tuple[str, ...] = ()  # the seeds the estimate used
    dropped_seeds: tuple[str, ...] = ()  # Δ: seeds only one of the two rows ran, left out
    paired: bool = True  # Δ: False when no seed and problem could be paired (independent bootstraps)

    def scaled(self, factor: float) -> "Estimate":
        return replace(self, value=factor * self.value, lo=factor * self.lo, hi=factor * self.hi)


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


def _seed_effects(seed_means: np.ndarray, explained: float) -> np.ndarray:
    """Seed effects shrunk so that the mean of S draws from them has variance σ_B²/S, where
    σ_B² = max(0, between-seed variance of the seed means - the part problems explain)."""
    s = seed_means.size
    if s < 2:
        return np.zeros(s)
    centred = seed_means - seed_means.mean()
    between = float(centred @ centred) / (s - 1)
    sigma2 = between - explained
    if sigma2 <= 1e-12:  # scores lie in [-1, 1]: below this, rounding in the means (identical seeds)
        return np.zeros(s)
    # a bootstrap mean of S draws has variance (1/S)·(1/S)Σb²; scale so that equals sigma2/S
    return centred * np.sqrt(sigma2 / between * s / (s - 1))


def _matrix(scores: Scores, seeds: list[str]) -> np.ndarray:
    """(problems, seeds) over every problem id of any seed; NaN where a seed lacks the problem."""
    ids = sorted({pid for s in seeds for pid in scores[s]})
    row = {pid: i for i, pid in enumerate(ids)}
    out = np.full((len(ids), len(seeds)), np.nan)
    for j, s in enumerate(seeds):
        for pid, v in scores[s].items():
            out[row[pid], j] = v
    return out


def _shared_replicates(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Problems resampled once with their mean over seeds; seed effects as the second level."""
    per_problem = np.nanmean(y, axis=1)
    reps = _resampled_means(per_problem, n_boot, rng)
    complete = y[~np.isnan(y).any(axis=1)]
    p, s = complete.shape
    if s > 1 and p > 1:
        seed_means = complete.mean(axis=0)
        resid = complete - complete.mean(axis=1, keepdims=True) - seed_means + complete.mean()
        mse = float((resid ** 2).sum()) / ((p - 1) * (s - 1))  # problem x seed noise
        effects = _seed_effects(seed_means, mse / p)
        if effects.any():
            reps = reps + effects[rng.integers(s, size=(n_boot, s))].mean(axis=1)
    return float(per_problem.mean()), reps


def _per_seed_replicates(groups: list[np.ndarray], n_boot: int,
                         rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Problems resampled within each seed (their own problems); seed effects as the second level."""
    reps = np.mean([_resampled_means(g, n_boot, rng) for g in groups], axis=0)
    seed_means = np.array([g.mean() for g in groups])
    if len(groups) > 1:
        within = float(np.mean([g.var(ddof=1) / g.size if g.size > 1 else 0.0 for g in groups]))
        effects = _seed_effects(seed_means, within)
        if effects.any():
            reps = reps + effects[rng.integers(len(groups), size=(n_boot, len(groups)))].mean(axis=1)
    return float(seed_means.mean()), reps


def _replicates(scores: Scores, seeds: list[str], shared: bool, n_boot: int,
                rng: np.random.Generator) -> tuple[float, np.ndarray]:
    if shared:
        return _shared_replicates(_matrix(scores, seeds), n_boot, rng)
    return _per_seed_replicates([np.fromiter(scores[s].values(), float) for s in seeds], n_boot, rng)


def _seeds(scores: Scores) -> list[str]:
    seeds = [s for s in scores if scores[s]]
    if not seeds:
        raise ValueError("no scores to bootstrap")
    return sorted(seeds, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def _interval(value: float, replicates: np.ndarray, level: float, **info) -> Estimate:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(float(value), float(lo), float(hi), **info)


def mean_ci(scores: Scores, shared: bool = True, n_boot: int = 2000, level: float = 0.95,
            seed: int = 0) -> Estimate:
    """Mean score with a percentile bootstrap interval; ``shared``: the seeds answered the same
    problems (matched by id), else each seed's problems are its own."""
    rng = np.random.default_rng(seed)
    seeds = _seeds(scores)
    value, reps = _replicates(scores, seeds, shared, n_boot, rng)
    return _interval(value, reps, level, seeds=tuple(seeds))


def delta_ci(a: Scores, b: Scores, shared: bool = True, n_boot: int = 2000, level: float = 0.95,
             seed: int = 0) -> Estimate:
    """Difference of means a - b, paired on the seeds both rows ran and, under each, the problems
    both answered (the seeds only one ran are left out and named in ``dropped_seeds``). With
    nothing to pair (no common seed, or no common problem: e.g. scores rebuilt from acc and n),
    the two rows are bootstrapped independently and ``paired`` is False."""
    rng = np.random.default_rng(seed)
    diffs: Scores = {}
    for s in set(a) & set(b):
        common = a[s].keys() & b[s].keys()
        if common:
            diffs[s] = {pid: a[s][pid] - b[s][pid] for pid in common}
    every = set(_seeds(a)) | set(_seeds(b))
    if diffs:
        seeds = _seeds(diffs)
        value, reps = _replicates(diffs, seeds, shared, n_boot, rng)
        return _interval(value, reps, level, seeds=tuple(seeds), dropped_seeds=tuple(sorted(every - set(seeds))),
                         paired=True)
    value_a, reps_a = _replicates(a, _seeds(a), shared, n_boot, rng)
    value_b, reps_b = _replicates(b, _seeds(b), shared, n_boot, rng)
    return _interval(value_a - value_b, reps_a - reps_b, level, seeds=tuple(sorted(every)), paired=False)
