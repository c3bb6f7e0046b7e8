"""The documents of an lm-eval task as problems, so the pool is decontaminated against them too.

A task is found among the YAMLs of ``benchmark.include_path`` (``lm_eval --include_path``) and
lm-eval's own task folders; its documents load wherever lm-eval loads them (a local file, the
HF datasets cache, or the hub when it is reachable). Where they cannot be loaded the caller is
told why, and the run says so (log and tag ``decontamination/<label>``) instead of skipping silently.
"""
from __future__ import annotations


def _leaf_tasks(tasks: dict) -> list:
    """The tasks of a `get_task_dict` result, groups flattened."""
    out = []
    for value in tasks.values():
        out += _leaf_tasks(value) if isinstance(value, dict) else [value]
    return out


def task_problems(task: str, include_path: str | None = None) -> tuple[list[dict], str | None]:
    """(problems ``{id, problem, answer}``, None), or ([], why) when the task's documents cannot be
    loaded. Every test document counts (the validation split where a task has no test split), not
    only the first ``benchmark.size``: a pool must not contain any of them."""
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=include_path, include_defaults=False) if include_path else None
    if manager is None or task not in manager.all_tasks:
        manager = TaskManager(include_path=include_path)  # lm-eval's ~200 task folders: a few seconds
    if task not in manager.all_tasks:
        return [], f"{task!r} is not an lm-eval task" + (f" (nor in {include_path})" if include_path else "")
    try:
        leaves = _leaf_tasks(get_task_dict([task], manager))
        problems = []
        for t in leaves:
            docs = t.test_docs() if t.has_test_docs() else t.validation_docs() if t.has_validation_docs() else None
            for i, doc in enumerate(docs or []):
                text = t.doc_to_text(doc)
                target = t.doc_to_target(doc)
                problems.append({"id": f"{t.config.task}-{i}", "problem": str(text), "answer": str(target),
                                 "meta": {"task": t.config.task}})
    except Exception as e:  # the dataset is on the hub and the hub is unreachable, or a task's own error
        return [], f"its documents did not load: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    if not problems:
        return [], "it has no test or validation documents"
    return problems, None
