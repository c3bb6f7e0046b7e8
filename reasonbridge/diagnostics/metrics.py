"""The diagnostics of one evaluated benchmark, as MLflow metrics (the `diagnose` stage's artifact)."""
from __future__ import annotations

from reasonbridge.diagnostics.steps import reference_operations, step_counts, step_metrics
from reasonbridge.diagnostics.teacher_forced import forced_counts, forced_metrics


def diagnostic_metrics(problems: list[dict], predictions: list[dict], *, benchmark: str, steps: bool,
                       teacher_forced: bool, model=None, tokenizer=None, instruction: str,
                       prompt_suffix: str = "") -> dict[str, float]:
    """`steps/*/<benchmark>` over every prediction (each sample) and `forced/<part>/<benchmark>` over
    the problems, where problems carry their worked solution; a served model (no logits) gets no
    teacher-forced metrics."""
    metrics: dict[str, float] = {}
    if steps:
        by_id = {p["id"]: p for p in problems}
        metrics.update(step_metrics(benchmark, [step_counts(x["output"], reference_operations(by_id[x["id"]]))
                                                for x in predictions]))
    if teacher_forced and tokenizer is not None and not getattr(model, "is_api", False):
        metrics.update(forced_metrics(benchmark, forced_counts(model, tokenizer, problems, instruction,
                                                               prompt_suffix=prompt_suffix)))
    return metrics
