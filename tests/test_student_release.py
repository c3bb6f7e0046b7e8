"""The released organism student: it matches the default config, is checked file by file, and is
used only for the config it was built with."""
from __future__ import annotations

import json
import shutil

import pytest

from reasonbridge.cache.code import code_fingerprint
from reasonbridge.stages.context import STAGE_CODE, RunContext
from reasonbridge.stages.student import release_config, tiny_config
from reasonbridge.student.release import RELEASE_DIR, copy_release, find_release, release_fingerprint

from conftest import compose_config


def _release_key(overrides=()):
    cfg = compose_config(list(overrides))
    return release_config(tiny_config(RunContext(cfg), cfg.model.tiny))


def test_the_default_student_config_is_the_released_one():
    """A change to the organism, its drills, the student's sizes or any code the student stage runs must
    come with a new release (python -m reasonbridge.stages.release_student), or every demo would
    pre-train again."""
    release = find_release(_release_key())
    assert release is not None
    assert release_fingerprint(release) == code_fingerprint(STAGE_CODE["student"]), \
        "the released student was built by other code: release this code's student"
    assert find_release(_release_key(["model.tiny.pretrain_lr=0.001"])) is None
    assert find_release(_release_key(["seed=3"])) is not None  # one student for every run seed


@pytest.mark.parametrize("model", ["tiny_small", "tiny_large"])
def test_each_size_of_the_family_is_released_by_this_code(model):
    """Table 1's other students and the teacher LM / teacher assistant: shipped like the student."""
    release = find_release(_release_key([f"model={model}"]))
    assert release is not None, f"release it: python -m reasonbridge.stages.release_student model={model}"
    assert release_fingerprint(release) == code_fingerprint(STAGE_CODE["student"]), \
        f"restamp it: python -m reasonbridge.stages.release_student --restamp model={model}"


def test_an_altered_release_file_is_refused(tmp_path):
    root = tmp_path / "release"
    shutil.copytree(RELEASE_DIR, root)
    manifest = json.loads((root / "release.json").read_text())
    info = copy_release(manifest, tmp_path / "ok", root=root)
    assert info["params"] > 0 and (tmp_path / "ok" / "model.safetensors").exists()
    (root / "model" / "tokenizer.json").write_text("{}")
    with pytest.raises(RuntimeError, match="tokenizer.json: missing or altered"):
        copy_release(manifest, tmp_path / "bad", root=root)


def test_each_size_of_the_family_has_its_own_release_folder(tmp_path, monkeypatch):
    from reasonbridge.student import release
    assert release.release_dir("tiny") == RELEASE_DIR
    assert release.release_dir("tiny_large").name == "organism-large"
    monkeypatch.setattr(release, "RELEASES", tmp_path)
    shutil.copytree(RELEASE_DIR, tmp_path / "organism-other")
    found = release.find_release(_release_key())
    assert found is not None and release.release_root(found) == tmp_path / "organism-other"
    assert release.ROOT_KEY not in json.loads((tmp_path / "organism-other" / "release.json").read_text())


def test_a_derived_context_builds_a_second_model_beside_the_student():
    """A teacher assistant or teacher language model: the run's config with its own model node, the
    same cache and results, its stages named apart."""
    cfg = compose_config([])
    ctx = RunContext(cfg)
    sub = ctx.derived("assistant", model=compose_config(["model=tiny_large"]).model)
    assert (sub.cfg.model.name, sub.cfg.model.tiny.hidden_size, ctx.cfg.model.tiny.hidden_size) == ("tiny_large", 128, 64)
    assert sub.cache is ctx.cache and sub.result is ctx.result and sub.prefix == "assistant/"
    assert tiny_config(sub, sub.cfg.model.tiny) != tiny_config(ctx, cfg.model.tiny)
    assert sub.cfg.model.tiny.drills == cfg.model.tiny.drills  # the same recipe
