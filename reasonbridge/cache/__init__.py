"""Content-addressed stage cache.

Each stage's artifact lives in `<cache_dir>/<stage>/<key>/`, where the key hashes the
stage's config slice, the keys of the stages it reads and a stage version. A stage is
computed into a temporary folder and renamed into place, so a reader never sees a
half-written artifact; a file lock per key makes concurrent jobs compute it once (the
lock is an OS `flock`, released by the kernel if its holder dies, so it never goes stale;
tests/test_cluster.py kills a holder to check). A run killed mid-stage leaves only a temp
folder, removed on the next attempt. On a shared filesystem the lock works across nodes
where the mount supports locking (NFSv4, or NFSv3 with lockd; not `nolock` mounts).

The manifest (`stage.json`) records every file's size and SHA-256. A cached artifact is verified
against them whenever a run reads it: one that was truncated or changed on disk (a torn copy, a
full disk, another tool) is never used; it is moved aside to `.corrupt-<key>-<time>/` (kept for
inspection), logged, and the stage is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

MANIFEST = "stage.json"


def checksums(folder: Path) -> dict[str, dict]:
    """{relative path: {bytes, sha256}} of every file of an artifact but its manifest."""
    out = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        with f.open("rb") as fh:
            out[f.relative_to(folder).as_posix()] = {"bytes": f.stat().st_size,
                                                     "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}
    return out


def damaged(folder: Path) -> list[str]:
    """What no longer matches the manifest's checksums (empty: intact, or a manifest without them)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return [f"{MANIFEST}: unreadable ({e})"]
    problems = []
    for rel, want in (manifest.get("files") or {}).items():
        f = folder / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
        elif f.stat().st_size != want["bytes"]:
            problems.append(f"{rel}: {f.stat().st_size} bytes, expected {want['bytes']}")
        else:
            with f.open("rb") as fh:
                if hashlib.file_digest(fh, "sha256").hexdigest() != want["sha256"]:
                    problems.append(f"{rel}: contents changed (SHA-256 differs)")
    return problems


def stage_key(stage: str, version: int, config: Any, upstream: dict[str, str] | None = None) -> str:
    """Stable hash of everything a stage's output depends on."""
    payload = {"stage": stage, "version": version, "config": config, "upstream": upstream or {}}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StageResult:
    stage: str
    key: str
    path: Path
    hit: bool  # True when read from the cache, False when computed in this call
    seconds: float


class StageCache:
    def __init__(self, root: str | os.PathLike, force: set[str] | None = None):
        self.root = Path(root)
        self.force = force or set()

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def exists(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / MANIFEST).exists()

    def run(self, stage: str, key: str, compute: Callable[[Path], None],
            meta: dict | None = None) -> StageResult:
        """Return the artifact folder for (stage, key), computing it with
        `compute(tmp_dir)` unless it is cached (or the stage is forced)."""
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        forced = stage in self.force or "all" in self.force
        start = time.perf_counter()
        lock = FileLock(str(final) + ".lock")
        try:  # only to say why this job waits
            lock.acquire(timeout=0)
            lock.release()
        except Timeout:
            log.info("stage %s %s: waiting for the job that is computing it (%s.lock)", stage, key, final)
        with lock:
            if (final / MANIFEST).exists() and not forced:
                problems = damaged(final)
                if not problems:
                    return StageResult(stage, key, final, True, time.perf_counter() - start)
                aside = final.parent / f".corrupt-{key}-{int(time.time())}"
                log.error("stage %s %s: the cached artifact is damaged (%s); moved to %s, recomputing",
                          stage, key, "; ".join(problems[:5]), aside)
                final.rename(aside)
            tmp = final.parent / f".tmp-{key}-{socket.gethostname()}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            for stale in final.parent.glob(f".tmp-{key}-*"):  # left by a killed run
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
            try:
                compute(tmp)
                manifest = {"stage": stage, "key": key, "created": time.time(),
                            "seconds": time.perf_counter() - start, **(meta or {}), "files": checksums(tmp)}
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
                if final.exists():  # forced recompute replaces the old artifact
                    old = final.parent / f".old-{key}-{os.getpid()}"
                    final.rename(old)
                    shutil.rmtree(old, ignore_errors=True)
                tmp.rename(final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return StageResult(stage, key, final, False, time.perf_counter() - start)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)
