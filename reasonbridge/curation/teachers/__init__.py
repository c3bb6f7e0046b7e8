"""Teachers write reasoning traces; `build_teacher` picks one from the `teacher` config group.

Every teacher exposes `name`, `identity` (what fixes its outputs besides the prompt and the
sampling parameters; never secrets), `sampling`, `endpoint`, `prompt(problem)` and
`run(jobs, emit, budget)`, which answers `(key, problem, prompt)` jobs and calls
`emit(key, response, provenance)` as each one finishes, so the cache keeps partial progress.
"""
from __future__ import annotations

from reasonbridge.prompts import user_message

# Asks free-form teachers for the levels the segmenter (reasonbridge.curation.segment) looks for.
TRACE_SYSTEM_PROMPT = (
    "You are an expert mathematician writing a worked solution for a student. Begin with a line "
    "'Strategy:' giving the overall approach, then a line 'Plan:' listing the sub-goals as 1) 2) 3), "
    "then one line per calculation starting 'Step k:', then a line 'Check:' verifying the result, "
    "and end with 'Final Answer: \\boxed{...}'."
)


def teacher_messages(problem_text: str, system_prompt: str | None) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt or TRACE_SYSTEM_PROMPT},
            {"role": "user", "content": user_message(problem_text)}]


def build_teacher(cfg, *, seed: int):
    """The teacher named by ``cfg.name`` (a `teacher` config node)."""
    if cfg.name == "symbolic":
        from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
        from reasonbridge.config import default_cites, default_phrases
        return SymbolicTeacher(defect_rate=cfg.defect_rate, seed=seed, corrections=cfg.corrections,
                               rechecks=cfg.rechecks, flawed_retry=cfg.flawed_retry, phrases=default_phrases(), cite=default_cites())
    if cfg.name == "openai":
        from reasonbridge.curation.teachers.openai import OpenAITeacher
        return OpenAITeacher.from_config(cfg, seed=seed)
    if cfg.name == "hf_local":
        from reasonbridge.curation.teachers.hf_local import HFLocalTeacher
        return HFLocalTeacher.from_config(cfg, seed=seed)
    raise ValueError(f"unknown teacher {cfg.name!r}")
