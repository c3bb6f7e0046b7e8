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


def test_an_altered_release_file_is_refused(tmp_path):
    root = tmp_path / "release"
    shutil.copytree(RELEASE_DIR, root)
    manifest = json.loads((root / "release.json").read_text())
    info = copy_release(manifest, tmp_path / "ok", root=root)
    assert info["params"] > 0 and (tmp_path / "ok" / "model.safetensors").exists()
    (root / "model" / "tokenizer.json").write_text("{}")
    with pytest.raises(RuntimeError, match="tokenizer.json: missing or altered"):
        copy_release(manifest, tmp_path / "bad", root=root)
