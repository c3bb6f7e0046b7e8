"""A cached result is reused only when the code that made it is unchanged: stage keys carry a fingerprint
of the code each stage runs (reasonbridge/cache/code.py), exceptions are explicit and recorded."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from reasonbridge.cache import StageCache, stage_key
from reasonbridge.cache import __main__ as cache_cli
from reasonbridge.cache import code
from reasonbridge.pipeline import Pipeline
from reasonbridge.stages.context import STAGE_CODE
from reasonbridge.stages.outputs import provenance_tags

from conftest import ROOT

STAGES = sorted(STAGE_CODE)


def copy_package(dest: Path) -> Path:
    """The package's Python sources, copied so a test can edit them (the fingerprint reads files)."""
    shutil.copytree(ROOT / "reasonbridge", dest / "reasonbridge",
                    ignore=shutil.ignore_patterns("__pycache__", "released", "*.pyc"))
    return dest / "reasonbridge"


def edit(root: Path, module: str, old: str, new: str) -> None:
    path = root.joinpath(*module.split(".")[1:]).with_suffix(".py")
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def fingerprints(root: Path | None = None) -> dict[str, str]:
    return {s: code.code_fingerprint(STAGE_CODE[s], root) for s in STAGES}


def changed(before: dict, after: dict) -> set[str]:
    return {s for s in before if before[s] != after[s]}


GII_DETECTOR = "reasonbridge.inference.state"


@pytest.fixture(scope="module")
def now() -> dict[str, str]:
    return fingerprints()


def test_comments_docstrings_and_formatting_change_no_fingerprint(tmp_path, now):
    root = copy_package(tmp_path)
    path = root / "inference" / "state.py"
    text = path.read_text()
    first = text.index('"""', 3) + 3  # after the module docstring: a new docstring, comments, blank lines
    path.write_text('"""Another module docstring."""' + text[first:].replace("\n\n", "\n\n\n# a comment\n", 3))
    edit(root, "reasonbridge.report.tables", "", "# the report is no stage's code\n")
    assert fingerprints(root) == now


def test_a_behaviour_change_changes_the_stages_that_import_it_only(tmp_path, now):
    root = copy_package(tmp_path)
    path = root / "inference" / "state.py"
    path.write_text(path.read_text() + "\nEXTRA_UNCERTAINTY_PHRASE = 'hmm, not sure'\n")
    # the stages that generate: attempts, eval, diagnose, BRIDGE's (the TA's answers and rationales) and
    # provenance's (it scores what eval generated, and candidates import the same stage module)
    assert changed(now, fingerprints(root)) == {"attempts", "eval", "diagnose", "subset", "rationales",
                                                "candidates", "provenance"}


def test_an_edit_of_the_report_or_bench_changes_no_stage(tmp_path, now):
    root = copy_package(tmp_path)
    edit(root, "reasonbridge.report.tables", "def ", "X = 1\n\n\ndef ")
    assert fingerprints(root) == now


def test_a_drill_change_rebuilds_the_organism_student(tmp_path, now):
    """The organism's drills are code, not config: a change to them changes the student's key (and
    every stage that generates from the organism), without a version number bumped by hand."""
    root = copy_package(tmp_path)
    path = root / "curation" / "organism.py"
    path.write_text(path.read_text() + "\nDRILL_TWEAK = 2\n")
    assert {"student", "reference", "benchmark", "pool"} <= changed(now, fingerprints(root))
    assert "train" not in changed(now, fingerprints(root))  # train recomputes only if the student came out different


def test_fingerprints_are_computed_once_per_process(monkeypatch):
    code.code_fingerprint(STAGE_CODE["eval"])
    monkeypatch.setattr(code.ast, "parse", lambda *a, **k: pytest.fail("parsed again"))
    code.code_fingerprint(STAGE_CODE["eval"])
    code.provenance(STAGE_CODE["eval"])


def _hits(result) -> dict[str, bool]:
    return {res.stage: res.hit for res in result.stages.values()}


def test_micro_pipeline_recomputes_only_what_the_changed_code_makes(micro_cfg, tmp_path, monkeypatch, caplog):
    """The issue's case: one more uncertainty phrase in GII's detector recomputes the evaluation and
    nothing before it; a comment-only edit and an edit of the report recompute nothing."""
    cfg = micro_cfg()
    first = Pipeline(cfg).run()
    assert set(_hits(first)) == {"student", "benchmark", "pool", "traces", "data", "train", "eval"}

    cosmetic = copy_package(tmp_path / "cosmetic")
    edit(cosmetic, GII_DETECTOR, "\n\n", "\n\n# why this detector counts phrases\n\n")
    edit(cosmetic, "reasonbridge.report.tables", "def ", "X = 1\n\n\ndef ")
    monkeypatch.setattr(code, "PACKAGE_DIR", cosmetic)
    assert all(_hits(Pipeline(cfg).run()).values())

    behaviour = copy_package(tmp_path / "behaviour")
    path = behaviour / "inference" / "state.py"
    path.write_text(path.read_text() + "\nEXTRA_UNCERTAINTY_PHRASE = 'hmm, not sure'\n")
    monkeypatch.setattr(code, "PACKAGE_DIR", behaviour)
    hits = _hits(Pipeline(cfg).run())
    assert hits == {"student": True, "benchmark": True, "pool": True, "traces": True, "data": True, "train": True,
                    "eval": False}


def test_reuse_across_code_serves_the_other_codes_artifact_and_tags_the_run(micro_cfg, tmp_path, monkeypatch,
                                                                           mlflow_uri, caplog):
    from mlflow.tracking import MlflowClient

    from reasonbridge.pipeline import run_experiment
    made = Pipeline(micro_cfg("stop_after=train")).run().stages["train"]
    other = copy_package(tmp_path)
    path = other / "training" / "run.py"
    path.write_text(path.read_text() + "\nA_HARMLESS_CHANGE = True\n")
    monkeypatch.setattr(code, "PACKAGE_DIR", other)

    without = Pipeline(micro_cfg("stop_after=data")).run().stages  # the new code's student and data: hits
    config = json.loads((made.path / "stage.json").read_text())["config"]
    inputs = {k: without[k].digest for k in ("student", "data")}
    assert stage_key("train", config, inputs, made.made_by["code"]["fingerprint"]) == made.key
    new_key = stage_key("train", config, inputs, code.code_fingerprint(STAGE_CODE["train"]))
    assert new_key != made.key and not StageCache(made.path.parents[1]).exists("train", new_key)  # would train again

    with caplog.at_level(logging.WARNING, logger="reasonbridge.cache"):
        result = run_experiment(micro_cfg("stop_after=train", "reuse_across_code=[train]"))
    train = result.stages["train"]
    assert train.hit and train.reused and train.path == made.path
    assert "REUSED an artifact made by other code" in caplog.text and "training.run" in caplog.text
    tags = MlflowClient(mlflow_uri).get_run(result.run_id).data.tags
    assert tags["reused_across_code"] == "train"
    assert tags["reused_across_code/train"].endswith(f"code {made.made_by['code']['fingerprint']}")
    assert tags["code/train"] == made.made_by["code"]["fingerprint"] != code.code_fingerprint(STAGE_CODE["train"])


def _entry(cache: StageCache, stage: str, key: str, made_by: dict) -> None:
    cache.run(stage, key, lambda out: (out / "x.txt").write_text(key), made_by=made_by, base="b-" + key)


def test_a_hit_made_under_other_library_versions_is_logged_and_tagged(tmp_path, caplog):
    cache = StageCache(tmp_path)
    made = {**code.provenance(STAGE_CODE["data"]), "commit": "0" * 40,
            "libraries": {**code.library_versions(), "torch": "0.0.1"}}
    _entry(cache, "data", "k1", made)
    now = {**code.provenance(STAGE_CODE["data"]), "commit": "1" * 40}
    with caplog.at_level(logging.INFO, logger="reasonbridge.cache"):
        res = cache.run("data", "k1", lambda out: pytest.fail("recomputed"), made_by=now)
    assert res.hit and not res.reused and res.libraries_differ["torch"].startswith("0.0.1 -> ")
    assert "made under other library versions (torch 0.0.1 -> " in caplog.text
    assert "made by commit 000000000000 (this checkout: 111111111111) with the same code" in caplog.text
    assert provenance_tags({"data": res})["libraries_differ/data"].startswith("torch 0.0.1 -> ")


def test_cache_ls_and_prune_drop_what_the_current_code_would_not_make(tmp_path, capsys):
    cache = StageCache(tmp_path / "cache")
    _entry(cache, "data", "current0000000aa", code.provenance(STAGE_CODE["data"]))
    old = copy_package(tmp_path / "old")
    edit(old, "reasonbridge.curation.selection", "def ", "OLD = 1\n\n\ndef ")
    _entry(cache, "data", "stale00000000bbb", code.provenance(STAGE_CODE["data"], old))
    root = ["--cache-dir", str(tmp_path / "cache")]

    cache_cli.main([*root, "ls"])
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("data ")}
    assert "stale" in lines["stale00000000bbb"] and "stale" not in lines["current0000000aa"]
    assert "2 artifacts" in out and "1 stale" in out

    cache_cli.main([*root, "prune", "--stale", "--dry-run"])
    assert "would remove data/stale00000000bbb" in capsys.readouterr().out
    assert cache.exists("data", "stale00000000bbb")
    cache_cli.main([*root, "prune", "--stale"])
    assert not cache.exists("data", "stale00000000bbb") and cache.exists("data", "current0000000aa")
    cache_cli.main([*root, "prune", "--older-than", "2000-01-01"])
    assert cache.exists("data", "current0000000aa")
    with pytest.raises(SystemExit, match="needs a criterion"):
        cache_cli.main([*root, "prune"])


def test_prune_unused_keeps_what_an_mlflow_run_refers_to(tmp_path, capsys, mlflow_uri):
    from mlflow.tracking import MlflowClient
    cache = StageCache(tmp_path / "cache")
    for key in ("usedkey000000000", "unusedkey0000000"):
        _entry(cache, "train", key, code.provenance(STAGE_CODE["train"]))
    client = MlflowClient(mlflow_uri)
    run = client.create_run(client.create_experiment("t"), tags={"cache/train": "usedkey000000000"})
    client.set_terminated(run.info.run_id)
    cache_cli.main(["--cache-dir", str(tmp_path / "cache"), "prune", "--unused"])
    assert cache.exists("train", "usedkey000000000") and not cache.exists("train", "unusedkey0000000")
    assert "removed train/unusedkey0000000" in capsys.readouterr().out


def test_a_release_is_used_only_by_the_code_that_built_it(tmp_path, monkeypatch, micro_cfg, caplog):
    """The released student is keyed by what it is: later stages by its files' hashes, the release
    itself by the config and the student stage's code that built it."""
    from reasonbridge.stages import student as student_stage
    from reasonbridge.stages.context import RunContext
    from reasonbridge.student import release
    stage_dir = tmp_path / "stage"
    (stage_dir / "model").mkdir(parents=True)
    (stage_dir / "model" / "weights.bin").write_bytes(b"\x00\x01")
    (stage_dir / "student.json").write_text(json.dumps({"path": "model", "params": 2}))
    (stage_dir / "stage.json").write_text(json.dumps({"made_by": code.provenance(STAGE_CODE["student"])}))
    cfg = micro_cfg()
    ctx = RunContext(cfg)
    config = student_stage.tiny_config(ctx, cfg.model.tiny)
    monkeypatch.setattr(release, "RELEASES", tmp_path / "released")
    release.write_release(stage_dir, student_stage.release_config(config), root=tmp_path / "released" / "organism")
    assert student_stage.usable_release(ctx, config) is not None

    other = copy_package(tmp_path / "other")
    edit(other, "reasonbridge.curation.organism", "def ", "DRILL = 1\n\n\ndef ")
    monkeypatch.setattr(code, "PACKAGE_DIR", other)
    with caplog.at_level(logging.WARNING, logger="reasonbridge.pipeline"):
        assert student_stage.usable_release(ctx, config) is None
    assert "was built by other code" in caplog.text
    assert student_stage.usable_release(RunContext(micro_cfg("reuse_across_code=[student]")), config) is not None


def _run(run_id: str, row: str, code_state: dict[str, str], commit: str = "c" * 40):
    from reasonbridge.report.runs import RunRecord
    return RunRecord(run_id, "1", 0, "table2", row, "tiny", "0", {}, {}, code=code_state,
                     made_by={s: commit for s in code_state})


def _table(runs_by_row: dict[str, list]):
    from reasonbridge.report.tables import BuiltTable, Cell, Column, Line
    spec = type("Spec", (), {"title": "T", "name": "t"})()
    lines = [Line("tiny", "tiny", row, row, [Cell("synthetic", runs=runs)]) for row, runs in runs_by_row.items()]
    return BuiltTable(spec, [Column("synthetic", "Synthetic", False)], lines, [])


def test_the_report_marks_rows_computed_by_other_code():
    from reasonbridge.report.provenance import MARK, mark_code_states
    same = _table({"base": [_run("a", "base", {"eval": "e1", "train": "t1"})],
                   "lora": [_run("b", "lora", {"eval": "e1"})]})  # a row without a train stage is not a mix
    mark_code_states(same)
    assert [line.label for line in same.lines] == ["base", "lora"]
    assert same.notes == ["cells computed at commit cccccccccccc (2 runs)"]

    mixed = _table({"base": [_run("a", "base", {"eval": "e1"}), _run("a2", "base", {"eval": "e1"}, "d" * 40)],
                    "lora": [_run("b", "lora", {"eval": "e2"}, "d" * 40)], "full": [_run("c", "full", {"eval": "e1"})]})
    mark_code_states(mixed)
    assert [line.label for line in mixed.lines] == ["base", f"lora {MARK}", "full"]
    assert "eval: e1 (3 runs), e2 (1 run)" in mixed.notes[0] and "more than one code state" in mixed.notes[0]
    assert mixed.notes[1] == "cells computed at commits cccccccccccc (2 runs), dddddddddddd (2 runs)"

    old = _table({"base": [_run("a", "base", {"eval": "e1"}), _run("b", "base", {"eval": "e1"})],
                  "lora": [_run("c", "lora", {})]})  # made before fingerprints were tagged
    mark_code_states(old)
    assert old.lines[1].label == f"lora {MARK}"


def test_reuse_across_code_names_stages():
    from reasonbridge.config import ConfigError, validate

    from conftest import compose_config
    validate(compose_config(["reuse_across_code=[train,attempts]"]))
    with pytest.raises(ConfigError, match="reuse_across_code: 'trian' is not a stage"):
        validate(compose_config(["reuse_across_code=[trian]"]))


def test_restamp_keeps_a_release_usable_across_a_harmless_code_change(tmp_path):
    """A release made before (or by other code) is re-recorded as this code's without pre-training, only
    with its files intact and its config unchanged; the old provenance is kept."""
    from reasonbridge.stages.student import release_config, tiny_config
    from reasonbridge.stages.context import RunContext
    from reasonbridge.student import release

    from conftest import compose_config
    root = tmp_path / "release"
    shutil.copytree(release.RELEASE_DIR, root)
    manifest = json.loads((root / "release.json").read_text())
    manifest["made_by"] = "python -m reasonbridge.stages.release_student"  # the format before provenance
    manifest["config"]["suite"]["version"] = 10  # a key the stage no longer carries
    (root / "release.json").write_text(json.dumps(manifest))
    cfg = compose_config()
    config = release_config(tiny_config(RunContext(cfg), cfg.model.tiny))
    assert release.release_fingerprint(json.loads((root / "release.json").read_text())) is None

    stamped = release.restamp(config, code.provenance(STAGE_CODE["student"]), root=root)
    assert release.find_release(config, root=root) is not None
    assert release.release_fingerprint(stamped) == code.code_fingerprint(STAGE_CODE["student"])
    assert stamped["restamped"][-1]["config"]["suite"]["version"] == 10

    changed_config = {**config, "seed": 1}
    with pytest.raises(ValueError, match="another config"):
        release.restamp(changed_config, code.provenance(STAGE_CODE["student"]), root=root)
    (root / "model" / "tokenizer.json").write_text("{}")
    with pytest.raises(RuntimeError, match="tokenizer.json: missing or altered"):
        release.restamp(config, code.provenance(STAGE_CODE["student"]), root=root)
