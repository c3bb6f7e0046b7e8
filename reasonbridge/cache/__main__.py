"""`python -m reasonbridge.cache ls|prune`: what the stage cache holds, and removing what is no longer needed.

  ls                      every artifact: stage, key, the commit and code that made it (`stale`: the
                          current code would not make it), date, size
  prune --stale           remove artifacts the current code would not make (their stage's code changed)
  prune --older-than D    ... made before D (2026-11-30, or 30d for 30 days ago)
  prune --unused          ... no MLflow run refers to (tags cache/<stage>; MLFLOW_TRACKING_URI or --tracking-uri)
  prune ... --dry-run     only list what would be removed

Criteria combine (an artifact is removed when it meets every one given). The cache folder is
--cache-dir, else $REASONBRIDGE_CACHE, else .cache/reasonbridge (paths.cache_dir's default). An
artifact that a job is computing (its lock is held) is never removed; do not prune while runs read it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from reasonbridge.cache import DEFAULT_CACHE_DIR, MANIFEST
from reasonbridge.cache.code import code_fingerprint


@dataclass
class Entry:
    stage: str
    key: str
    path: Path
    manifest: dict

    @property
    def made_by(self) -> dict:
        return self.manifest.get("made_by") or {}

    @property
    def fingerprint(self) -> str | None:
        return (self.made_by.get("code") or {}).get("fingerprint")

    @property
    def bytes(self) -> int:
        return sum(f.get("bytes", 0) for f in (self.manifest.get("files") or {}).values())

    @property
    def created(self) -> float:
        return float(self.manifest.get("created", 0))

    def stale(self) -> bool:
        """Whether the current code would make another artifact (or it records no code)."""
        root = (self.made_by.get("code") or {}).get("root")
        if not root or not self.fingerprint:
            return True
        try:
            return code_fingerprint(root) != self.fingerprint
        except (ModuleNotFoundError, SyntaxError):
            return True


def entries(root: Path) -> list[Entry]:
    out = []
    for manifest_path in sorted(root.glob(f"*/*/{MANIFEST}")):
        folder = manifest_path.parent
        if folder.name.startswith("."):
            continue
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        out.append(Entry(folder.parent.name, folder.name, folder, manifest))
    return out


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def cutoff(text: str) -> float:
    """A date (YYYY-MM-DD) or an age (30d) as a POSIX time."""
    if text.endswith("d") and text[:-1].isdigit():
        return time.time() - 86400 * int(text[:-1])
    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise SystemExit(f"error: --older-than {text!r}: expected a date (2026-11-30) or an age (30d)") from None


def referenced_keys(uri: str | None) -> set[tuple[str, str]]:
    """(stage, key) of every artifact an active MLflow run's `cache/<label>` tags name."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    found: set[tuple[str, str]] = set()
    token = None
    while ids:
        page = client.search_runs(ids, max_results=1000, page_token=token)
        for run in page:
            for tag, value in run.data.tags.items():
                if tag.startswith("cache/"):
                    found.add((tag.split("/")[1], value))
        token = page.token
        if not token:
            break
    return found


def cmd_ls(root: Path, args) -> int:
    rows = [e for e in entries(root) if args.stage is None or e.stage == args.stage]
    if args.json:
        print(json.dumps([{"stage": e.stage, "key": e.key, "commit": e.made_by.get("commit"),
                           "code": e.fingerprint, "stale": e.stale(), "created": e.created, "bytes": e.bytes,
                           "path": str(e.path)} for e in rows], indent=2))
        return 0
    print(f"{'stage':<10} {'key':<16} {'commit':<13} {'code':<16} {'':<5} {'made':<16} {'size':>9}")
    for e in rows:
        commit = (e.made_by.get("commit") or "-")[:12] + ("*" if e.made_by.get("dirty") else "")
        made = datetime.fromtimestamp(e.created).strftime("%Y-%m-%d %H:%M") if e.created else "-"
        print(f"{e.stage:<10} {e.key:<16} {commit:<13} {e.fingerprint or '-':<16} {'stale' if e.stale() else '':<5} "
              f"{made:<16} {human_size(e.bytes):>9}")
    stale = sum(e.stale() for e in rows)
    print(f"{len(rows)} artifacts, {human_size(sum(e.bytes for e in rows))} in {root}; {stale} stale (made by code "
          "that has changed since: `prune --stale` removes them); * = made from a checkout with local changes")
    return 0


def cmd_prune(root: Path, args) -> int:
    if not (args.stale or args.older_than or args.unused):
        raise SystemExit("error: prune needs a criterion: --stale, --older-than DATE or --unused (and --dry-run "
                         "to see what would go)")
    chosen = [e for e in entries(root) if args.stage is None or e.stage == args.stage]
    if args.stale:
        chosen = [e for e in chosen if e.stale()]
    if args.older_than:
        before = cutoff(args.older_than)
        chosen = [e for e in chosen if e.created < before]
    if args.unused:
        used = referenced_keys(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
        chosen = [e for e in chosen if (e.stage, e.key) not in used]
    freed = 0
    for e in chosen:
        verb = "would remove" if args.dry_run else "removed"
        if not args.dry_run:
            lock = FileLock(str(e.path) + ".lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                print(f"skipped {e.stage}/{e.key}: a job holds its lock")
                continue
            try:
                shutil.rmtree(e.path, ignore_errors=True)
            finally:
                lock.release()
        freed += e.bytes
        print(f"{verb} {e.stage}/{e.key} ({human_size(e.bytes)}, commit {(e.made_by.get('commit') or '-')[:12]})")
    print(f"{'would free' if args.dry_run else 'freed'} {human_size(freed)} ({len(chosen)} artifacts)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbridge.cache", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("REASONBRIDGE_CACHE") or DEFAULT_CACHE_DIR))
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", help="list artifacts")
    ls.add_argument("--stage")
    ls.add_argument("--json", action="store_true")
    prune = sub.add_parser("prune", help="remove artifacts")
    prune.add_argument("--stage")
    prune.add_argument("--stale", action="store_true", help="made by code that has changed since")
    prune.add_argument("--older-than", metavar="DATE", help="made before DATE (YYYY-MM-DD) or an age (30d)")
    prune.add_argument("--unused", action="store_true", help="no MLflow run refers to it")
    prune.add_argument("--tracking-uri")
    prune.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if not args.cache_dir.is_dir():
        raise SystemExit(f"error: no stage cache at {args.cache_dir} (--cache-dir, or REASONBRIDGE_CACHE)")
    return (cmd_ls if args.command == "ls" else cmd_prune)(args.cache_dir, args)


if __name__ == "__main__":
    sys.exit(main())
