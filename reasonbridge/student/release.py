"""The organism's released student: the default pre-trained student, shipped in the repository.

Pre-training the organism's student takes 1.5-3 minutes on 2 CPU cores, more on a CPU without
fast fp32 (AVX2 only), and a rebuild on another machine or thread count gives other weights
(floating-point sums run in another order). The paper starts from one released checkpoint; so
does the demo: the student stage copies this one when its config is the one it was built with,
after checking every file's SHA-256, and pre-trains from scratch otherwise
(`model.tiny.use_release=false` forces that). Made by `python -m reasonbridge.stages.release_student`.
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


def find_release(config: dict, version: int, root: Path = RELEASE_DIR) -> dict | None:
    """The release manifest when ``root`` holds a student built with exactly this stage config
    and stage version; None when there is none or it was built with another."""
    path = root / MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("stage_version") != version or _plain(manifest.get("config")) != _plain(config):
        return None
    return manifest


def copy_release(manifest: dict, out: Path, root: Path = RELEASE_DIR) -> dict:
    """Copy the released model folder to ``out`` after checking every file's hash; returns the
    student info it was released with."""
    out.mkdir(parents=True, exist_ok=True)
    for name, digest in manifest["files"].items():
        src = root / "model" / name
        if not src.exists() or sha256(src) != digest:
            raise RuntimeError(f"{src}: missing or altered (its SHA-256 differs from {root / MANIFEST}); "
                               "restore it with git, or run with model.tiny.use_release=false to pre-train")
        shutil.copy2(src, out / name)
    return manifest["info"]


def write_release(stage_dir: Path, config: dict, version: int, root: Path = RELEASE_DIR) -> dict:
    """Package a built student stage (its ``model/`` folder and ``student.json``) as the release."""
    if root.exists():
        shutil.rmtree(root)
    (root / "model").mkdir(parents=True)
    files = {}
    for src in sorted((stage_dir / "model").iterdir()):
        shutil.copy2(src, root / "model" / src.name)
        files[src.name] = sha256(src)
    info = json.loads((stage_dir / "student.json").read_text())
    manifest = {"stage_version": version, "config": config, "files": files, "info": info,
                "made_by": "python -m reasonbridge.stages.release_student"}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
