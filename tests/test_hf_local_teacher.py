"""The hf_local teacher: a local transformers model writing traces in batches, through the cache."""
import pytest

from reasonbridge.curation.teacher_cache import Budget, TeacherCache, collect_traces
from reasonbridge.curation.teachers.hf_local import HFLocalTeacher

pytestmark = pytest.mark.slow


def test_local_model_traces_are_cached_with_usage(smollm_folder, tmp_path):
    problems = [{"id": f"q{i}", "problem": f"What is {i} times 3?", "answer": str(3 * i), "domain": "97",
                 "difficulty": 1} for i in range(3)]
    teacher = HFLocalTeacher(str(smollm_folder), max_tokens=8, batch_size=2)
    cache = TeacherCache(tmp_path, teacher.identity)
    traces, usage = collect_traces(teacher, problems, cache, Budget(3, None))
    assert usage["queries"] == 3 and all(t["text"] for t in traces)
    assert all(0 < t["provenance"]["usage"]["completion_tokens"] <= 8 and t["segments"] for t in traces)
    assert all(t["provenance"]["usage"]["prompt_tokens"] > 20 for t in traces)  # system + user turn
    _, again = collect_traces(HFLocalTeacher(str(smollm_folder), max_tokens=8, batch_size=2), problems,
                              TeacherCache(tmp_path, teacher.identity), Budget(3, None, queries=3))
    assert again == {"queries": 0, "cache_hits": 3, "cost_usd": 0.0}
    with pytest.raises(ValueError, match="local model folder"):
        HFLocalTeacher(str(tmp_path / "missing"))
