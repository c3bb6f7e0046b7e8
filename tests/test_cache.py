import multiprocessing as mp
import time
from pathlib import Path

import pytest

from reasonbridge.cache import MANIFEST, StageCache, stage_key


def test_key_depends_on_config_upstream_and_code():
    base = stage_key("data", {"name": "full"}, {"traces": "abc"}, "code1")
    assert base == stage_key("data", {"name": "full"}, {"traces": "abc"}, "code1")
    assert base != stage_key("data", {"name": "full"}, {"traces": "abc"}, "code2")
    assert base != stage_key("data", {"name": "random"}, {"traces": "abc"}, "code1")
    assert base != stage_key("data", {"name": "full"}, {"traces": "abd"}, "code1")
    assert base != stage_key("data", {"name": "full"}, {"traces": "abc"})  # the key any code shares


def test_second_call_hits_and_force_recomputes(tmp_path):
    calls = []

    def compute(out: Path):
        calls.append(1)
        (out / "x.txt").write_text(str(len(calls)))

    cache = StageCache(tmp_path)
    first = cache.run("s", "k", compute)
    second = cache.run("s", "k", compute)
    assert not first.hit and second.hit and len(calls) == 1
    assert (second.path / "x.txt").read_text() == "1"
    forced = StageCache(tmp_path, force={"s"}).run("s", "k", compute)
    assert not forced.hit and (forced.path / "x.txt").read_text() == "2"


def test_failed_compute_leaves_nothing_behind(tmp_path):
    def boom(out: Path):
        (out / "half.txt").write_text("partial")
        raise RuntimeError("killed")

    cache = StageCache(tmp_path)
    with pytest.raises(RuntimeError):
        cache.run("s", "k", boom)
    assert not cache.exists("s", "k")
    assert list((tmp_path / "s").glob(".tmp-*")) == []
    res = cache.run("s", "k", lambda out: (out / "ok").write_text("1"))
    assert not res.hit and (res.path / "ok").exists()


def _slow_stage(root: str, log: str) -> None:
    def compute(out: Path):
        with open(log, "a") as f:
            f.write("computed\n")
        time.sleep(0.5)
        (out / "data").write_text("done")
    res = StageCache(root).run("s", "k", compute)
    assert (res.path / "data").read_text() == "done" and (res.path / MANIFEST).exists()


def test_concurrent_processes_compute_once(tmp_path):
    log = tmp_path / "log"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_slow_stage, args=(str(tmp_path / "c"), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert log.read_text().count("computed") == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_artifact_is_detected_on_read_and_recomputed(tmp_path, damage, caplog):
    calls = []

    def compute(out: Path):
        calls.append(1)
        (out / "model").mkdir()
        (out / "model" / "weights.bin").write_bytes(bytes(range(256)) * 64)
        (out / "metrics.json").write_text('{"acc": 0.5}')

    cache = StageCache(tmp_path)
    first = cache.run("s", "k", compute)
    weights = first.path / "model" / "weights.bin"
    if damage == "truncate":  # a torn write by something outside the harness
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "flip":  # same size, other contents
        data = bytearray(weights.read_bytes())
        data[5000] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        (first.path / "metrics.json").unlink()
    again = cache.run("s", "k", compute)
    assert not again.hit and len(calls) == 2  # never used: recomputed
    assert weights.read_bytes() == bytes(range(256)) * 64 and (again.path / "metrics.json").exists()
    assert "damaged" in caplog.text and "weights.bin" in caplog.text or "metrics.json: missing" in caplog.text
    assert len(list(tmp_path.glob("s/.corrupt-k-*"))) == 1  # kept aside for inspection
    assert cache.run("s", "k", compute).hit and len(calls) == 2  # intact again: read from the cache
