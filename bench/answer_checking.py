"""Cost of judging answers with math-verify (in worker processes) within an evaluation.

On the synthetic benchmark with the embedded student, runs the whole `evaluate()` (prompting,
generation, judging) once with the exact checker and once with math-verify, in interleaved
rounds (best of each, since the machine is shared), and judges the same outputs once more with
math-verify alone (worker start-up included). Prints the ratio of evaluation times
math / exact: math-verify should not dominate evaluation (target: <= 1.25).

    python bench/answer_checking.py                                  # micro student, 100 problems
    python bench/answer_checking.py --max-new-tokens 256 --rounds 3
    python bench/answer_checking.py --experiment none                # the default tiny student
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._compose import compose_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="micro", help="an experiment preset for the student ('none': tiny)")
    ap.add_argument("--size", type=int, default=100, help="synthetic problems")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: the preset's")
    ap.add_argument("--workers", type=int, default=2, help="math-verify worker processes")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    from reasonbridge.curation.pool import synthetic_benchmark
    from reasonbridge.evaluation.checkers import Checker
    from reasonbridge.evaluation.evaluate import evaluate
    from reasonbridge.models.loading import load_model
    from reasonbridge.pipeline import Pipeline

    overrides = ["progress=false", f"benchmark.size={args.size}"]
    if args.experiment != "none":
        overrides.append(f"experiment={args.experiment}")
    if args.max_new_tokens:
        overrides.append(f"inference.max_new_tokens={args.max_new_tokens}")
    if args.cache_dir:
        overrides.append(f"paths.cache_dir={args.cache_dir}")
    cfg = compose_config(overrides)
    pipeline = Pipeline(cfg)
    model, tokenizer = load_model(pipeline.student_path(pipeline.student()), cfg.model.dtype)
    s = pipeline._suite()
    problems = synthetic_benchmark(args.size, seed=cfg.seed, difficulties=list(cfg.benchmark.difficulties),
                                   max_operand=s["max_operand"], domains=s["domains"])

    best: dict[str, float] = {}
    preds: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for name in ("exact", "math"):
            start = time.perf_counter()
            preds[name], _ = evaluate(model, tokenizer, problems, benchmark="synthetic", inference=cfg.inference,
                                      progress=False, checker=name, check_workers=args.workers)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    start = time.perf_counter()
    with Checker("math", workers=args.workers) as judge:
        judge.check([p["output"] for p in preds["math"]], problems)
    judging = time.perf_counter() - start
    acc = {k: sum(p["correct"] for p in v) / len(v) for k, v in preds.items()}
    print(f"{len(problems)} synthetic problems, {cfg.inference.max_new_tokens} max new tokens, "
          f"{args.workers} math-verify workers, best of {args.rounds} rounds")
    print(f"evaluate, exact checker     {best['exact']:7.2f} s   acc {acc['exact']:.3f}")
    print(f"evaluate, math-verify       {best['math']:7.2f} s   acc {acc['math']:.3f}")
    print(f"math-verify alone (cold)    {judging:7.2f} s")
    print(f"ratio math / exact          {best['math'] / best['exact']:7.3f}   (target <= 1.25)")
    print(f"verdicts {'agree' if [p['correct'] for p in preds['exact']] == [p['correct'] for p in preds['math']] else 'DIFFER'}")


if __name__ == "__main__":
    main()
