"""The organism's released student: the default pre-trained student, shipped in the repository.

Pre-training the organism's student takes 1.5-3 minutes on 2 CPU cores, more on a CPU without
fast fp32 (AVX2 only), and a rebuild on another machine or thread count gives other weights
(floating-point sums run in another order). The paper starts from one released checkpoint; so
does the demo: the student stage copies this one when its config is the one it was built with and
the code of the student stage is the code that built it (the release's `made_by`: commit, code
fingerprint, libraries), after checking every file's SHA-256, and pre-trains from scratch otherwise
(`model.tiny.use_release=false` forces that; `reuse_across_code=[student]` takes a release made by
other code, and says so). Later stages are keyed on the release's contents, not on how it was got.
Made by `python -m reasonbridge.stages.release_student`.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

RELEASE_DIR = Path(__file__).parent / "released" / "organism"
MANIFEST = "release.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plain(obj) -> str:
    return json.dumps(obj, sort_keys=True)


def find_release(config: dict, root: Path | None = None) -> dict | None:
    """The release manifest when ``root`` holds a student built with exactly this stage config;
    None when there is none or it was built with another. Whether it was built by this code:
    `release_fingerprint`."""
    path = (root or RELEASE_DIR) / MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if _plain(manifest.get("config")) != _plain(config):
        return None
    return manifest


def release_fingerprint(manifest: dict) -> str | None:
    """The code fingerprint of the student stage that built the release (None: not recorded)."""
    return ((manifest.get("made_by") or {}).get("code") or {}).get("fingerprint")


def copy_release(manifest: dict, out: Path, root: Path | None = None) -> dict:
    """Copy the released model folder to ``out`` after checking every file's hash; returns the
    student info it was released with."""
    root = root or RELEASE_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, digest in manifest["files"].items():
        src = root / "model" / name
        if not src.exists() or sha256(src) != digest:
            raise RuntimeError(f"{src}: missing or altered (its SHA-256 differs from {root / MANIFEST}); "
                               "restore it with git, or run with model.tiny.use_release=false to pre-train")
        shutil.copy2(src, out / name)
    return manifest["info"]


def write_release(stage_dir: Path, config: dict, root: Path | None = None) -> dict:
    """Package a built student stage (its ``model/`` folder, ``student.json`` and the `made_by` of its
    manifest) as the release."""
    root = root or RELEASE_DIR
    if root.exists():
        shutil.rmtree(root)
    (root / "model").mkdir(parents=True)
    files = {}
    for src in sorted((stage_dir / "model").iterdir()):
        shutil.copy2(src, root / "model" / src.name)
        files[src.name] = sha256(src)
    info = json.loads((stage_dir / "student.json").read_text())
    made_by = json.loads((stage_dir / "stage.json").read_text()).get("made_by") or {}
    manifest = {"config": config, "files": files, "info": info, "made_by": made_by,
                "released_by": "python -m reasonbridge.stages.release_student"}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
