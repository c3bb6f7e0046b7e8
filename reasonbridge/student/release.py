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

RELEASES = Path(__file__).parent / "released"
RELEASE_DIR = RELEASES / "organism"  # the default student's (model=tiny); other sizes beside it
MANIFEST = "release.json"


def release_dir(model_name: str) -> Path:
    """Where the release of a tiny model config group entry lives: ``organism`` for the default
    ``model=tiny``, ``organism-large`` for ``model=tiny_large`` and so on."""
    return RELEASE_DIR if model_name == "tiny" else RELEASES / f"organism-{model_name.removeprefix('tiny_')}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plain(obj) -> str:
    return json.dumps(obj, sort_keys=True)


def find_release(config: dict, root: Path | None = None) -> dict | None:
    """The release manifest when ``root`` (default: any folder under released/) holds a model built
    with exactly this stage config; None when there is none or it was built with another. Whether it
    was built by this code: `release_fingerprint`. Where it was found: `release_root`."""
    roots = [root] if root is not None else sorted(p for p in RELEASES.iterdir() if p.is_dir())
    for folder in roots:
        path = folder / MANIFEST
        if not path.exists():
            continue
        manifest = json.loads(path.read_text())
        if _plain(manifest.get("config")) == _plain(config):
            return {**manifest, ROOT_KEY: str(folder)}
    return None


ROOT_KEY = "_found_in"  # set by find_release, never written


def release_root(manifest: dict) -> Path:
    """The folder a manifest from `find_release` was found in."""
    return Path(manifest.get(ROOT_KEY) or RELEASE_DIR)


def release_made_by(manifest: dict) -> dict:
    """The release's provenance (`made_by` of the student stage that built it; {} for a release made
    before provenance was recorded, whose `made_by` named the command)."""
    made = manifest.get("made_by")
    return made if isinstance(made, dict) else {}


def release_fingerprint(manifest: dict) -> str | None:
    """The code fingerprint of the student stage that built the release (None: not recorded)."""
    return (release_made_by(manifest).get("code") or {}).get("fingerprint")


def _within(old, new):
    """``old`` with only the keys ``new`` has (recursively): a config before keys were dropped from it."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _within(v, new[k]) for k, v in old.items() if k in new}
    return old


def restamp(config: dict, made_by: dict, root: Path | None = None) -> dict:
    """Record the release in ``root`` as made by the code of ``made_by``, without pre-training: for a
    change its releaser knows leaves the student as it is. Every file's hash is checked, the config
    must be the release's (less keys no longer keyed on), and the previous provenance is kept under
    `restamped` in the manifest."""
    root = root or RELEASE_DIR
    manifest = json.loads((root / MANIFEST).read_text())
    for name, digest in manifest["files"].items():
        if not (root / "model" / name).exists() or sha256(root / "model" / name) != digest:
            raise RuntimeError(f"{root / 'model' / name}: missing or altered; restore it with git")
    if _plain(_within(manifest["config"], config)) != _plain(config):
        raise ValueError("the release was built with another config than this one: pre-train a new release")
    history = [*manifest.get("restamped", []), {"made_by": manifest.get("made_by"), "config": manifest["config"],
                                                **({"stage_version": manifest["stage_version"]}
                                                   if "stage_version" in manifest else {})}]
    manifest = {**{k: v for k, v in manifest.items() if k != "stage_version"}, "config": config,
                "made_by": made_by, "restamped": history}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def copy_release(manifest: dict, out: Path, root: Path | None = None) -> dict:
    """Copy the released model folder to ``out`` after checking every file's hash; returns the
    student info it was released with."""
    root = root or release_root(manifest)
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
