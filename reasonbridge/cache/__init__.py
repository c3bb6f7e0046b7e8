"""Content-addressed stage cache.

Each stage's artifact lives in `<cache_dir>/<stage>/<key>/`, where the key hashes the stage's
config slice, the contents of the artifacts it reads (their files' hashes, as DVC keys a stage on
its dependencies) and a fingerprint of the code it runs (reasonbridge/cache/code.py: its module and
every reasonbridge module it imports, comments and docstrings aside). So a change of code that a
stage runs recomputes that stage, and a later stage only when what it reads came out different;
an edit nothing imports (the report, bench/) recomputes nothing. A stage named in
`reuse_across_code` may instead be served an artifact made from the same config and inputs by
other code: logged, recorded in the result and tagged on the MLflow run, never silent.

A stage is computed into a temporary folder and renamed into place, so a reader never sees a
half-written artifact; a file lock per key makes concurrent jobs compute it once (the
lock is an OS `flock`, released by the kernel if its holder dies, so it never goes stale;
tests/test_cluster.py kills a holder to check). A run killed mid-stage leaves only a temp
folder, removed on the next attempt. On a shared filesystem the lock works across nodes
where the mount supports locking (NFSv4, or NFSv3 with lockd; not `nolock` mounts).

The manifest (`stage.json`) records every file's size and SHA-256, and `made_by`: the commit, the
code fingerprint (with each module's hash) and the numeric libraries' versions. A cached artifact is
verified against the checksums whenever a run reads it: one that was truncated or changed on disk (a
torn copy, a full disk, another tool) is never used; it is moved aside to `.corrupt-<key>-<time>/`
(kept for inspection), logged, and the stage is recomputed. `python -m reasonbridge.cache ls|prune`
lists and prunes artifacts.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

MANIFEST = "stage.json"
DEFAULT_CACHE_DIR = ".cache/reasonbridge"  # paths.cache_dir when REASONBRIDGE_CACHE is not set


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
    return verified(folder)[1]


def verified(folder: Path) -> tuple[dict, list[str]]:
    """(the manifest, what no longer matches its checksums)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return {}, [f"{MANIFEST}: unreadable ({e})"]
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
    return manifest, problems


def digest_of(files: dict[str, dict]) -> str:
    """One hash of an artifact's contents (its manifest's checksums): what later stages are keyed on."""
    blob = json.dumps({rel: f["sha256"] for rel, f in files.items()}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def stage_key(stage: str, config: Any, upstream: dict[str, str] | None = None, code: str | None = None) -> str:
    """Stable hash of everything a stage's output depends on: its config slice, what it reads
    (`upstream`: name -> digest) and the fingerprint of its code. Without `code`: the key that
    artifacts made from the same config and inputs by any code share (`reuse_across_code`)."""
    payload = {"stage": stage, "config": config, "upstream": upstream or {}}
    if code is not None:
        payload["code"] = code
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StageResult:
    stage: str
    key: str
    path: Path
    hit: bool  # True when read from the cache, False when computed in this call
    seconds: float
    digest: str = ""  # the artifact's contents (`digest_of`): what later stages are keyed on
    made_by: dict = field(default_factory=dict)  # commit, code fingerprint, libraries (the manifest's)
    reused: bool = False  # made by other code than this run's, served by `reuse_across_code`
    libraries_differ: dict = field(default_factory=dict)  # {library: "made -> now"} on a hit


def _fingerprint(made_by: dict | None) -> str | None:
    return ((made_by or {}).get("code") or {}).get("fingerprint")


class StageCache:
    def __init__(self, root: str | os.PathLike, force: set[str] | None = None, reuse: set[str] | None = None):
        self.root = Path(root)
        self.force = force or set()
        self.reuse = reuse or set()  # stages that may be served an artifact made by other code

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def exists(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / MANIFEST).exists()

    def run(self, stage: str, key: str, compute: Callable[[Path], dict | None],
            meta: dict | None = None, made_by: dict | None = None, base: str | None = None) -> StageResult:
        """Return the artifact folder for (stage, key), computing it with
        `compute(tmp_dir)` unless it is cached (or the stage is forced).

        `made_by` (`code.provenance`) is recorded in the manifest; `base` is the key without the
        code fingerprint, under which a stage in `reuse` finds an artifact made by other code.
        `compute` may return {"made_by": ...} when what it stores was made elsewhere (a release)."""
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
                manifest, problems = verified(final)
                if not problems:
                    return self._served(stage, final, manifest, made_by, start)
                aside = final.parent / f".corrupt-{key}-{int(time.time())}"
                log.error("stage %s %s: the cached artifact is damaged (%s); moved to %s, recomputing",
                          stage, key, "; ".join(problems[:5]), aside)
                final.rename(aside)
            if base is not None and not forced and {stage, "all"} & self.reuse:
                other = self._made_by_other_code(stage, base, made_by)
                if other is not None:
                    return self._served(stage, *other, made_by, start)
            tmp = final.parent / f".tmp-{key}-{socket.gethostname()}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            for stale in final.parent.glob(f".tmp-{key}-*"):  # left by a killed run
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
            try:
                made = compute(tmp)
                files = checksums(tmp)
                manifest = {"stage": stage, "key": key, "base": base, "created": time.time(),
                            "seconds": time.perf_counter() - start, **(meta or {}),
                            "made_by": made_by or {}, **(made if isinstance(made, dict) else {}), "files": files}
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
                if final.exists():  # forced recompute replaces the old artifact
                    old = final.parent / f".old-{key}-{os.getpid()}"
                    final.rename(old)
                    shutil.rmtree(old, ignore_errors=True)
                tmp.rename(final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return StageResult(stage, key, final, False, time.perf_counter() - start, digest_of(files),
                           manifest["made_by"], reused=_differs(manifest["made_by"], made_by))

    def _made_by_other_code(self, stage: str, base: str, made_by: dict | None) -> tuple[Path, dict] | None:
        """The newest intact artifact of ``stage`` made from the same config and inputs (``base``)
        by other code, or None."""
        found = []
        for f in (self.root / stage).glob(f"*/{MANIFEST}"):
            try:
                manifest = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if manifest.get("base") == base:
                found.append((manifest.get("created", 0), f.parent))
        for _, folder in sorted(found, reverse=True):
            manifest, problems = verified(folder)
            if not problems:
                return folder, manifest
        return None

    def _served(self, stage: str, folder: Path, manifest: dict, made_by: dict | None, start: float) -> StageResult:
        """A cached artifact, its provenance compared with this run's (logged when it differs)."""
        key = folder.name
        made = manifest.get("made_by") or {}
        now = made_by or {}
        res = StageResult(stage, key, folder, True, time.perf_counter() - start,
                          digest_of(manifest["files"]) if "files" in manifest else digest_of(checksums(folder)),
                          made, reused=_differs(made, made_by))
        if res.reused:
            from reasonbridge.cache.code import changed_modules
            changed = changed_modules((made.get("code") or {}).get("modules") or {},
                                      (now.get("code") or {}).get("modules") or {})
            log.warning("stage %s %s: REUSED an artifact made by other code (commit %s, code %s; this run's code "
                        "is %s, differing in %s), because reuse_across_code names %s", stage, key,
                        made.get("commit", "unknown"), _fingerprint(made), _fingerprint(now),
                        ", ".join(changed[:8]) or "unrecorded modules", stage)
        elif made.get("commit") and now.get("commit") and made["commit"] != now["commit"]:
            log.info("stage %s %s: cached, made by commit %s (this checkout: %s) with the same code",
                     stage, key, made["commit"][:12], now["commit"][:12])
        if now.get("libraries"):
            from reasonbridge.cache.code import library_differences
            res.libraries_differ = library_differences(made.get("libraries"), now["libraries"])
            if res.libraries_differ:
                log.warning("stage %s %s: cached, made under other library versions (%s); served, tagged on the "
                            "MLflow run; force=[%s] recomputes it", stage, key,
                            ", ".join(f"{k} {v}" for k, v in res.libraries_differ.items()), stage)
        return res


def _differs(made: dict | None, now: dict | None) -> bool:
    """Whether an artifact was made by other code than ``now`` (both recorded)."""
    return _fingerprint(now) is not None and _fingerprint(made) != _fingerprint(now)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)
