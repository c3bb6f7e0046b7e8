"""Code fingerprints: what part of a stage key says which code made the artifact.

A stage's code is its own module and every `reasonbridge` module it imports, transitively, found by
reading the import statements (module level and inside functions, the lazy imports most stages use)
with `ast`, never by importing. Each module counts by the hash of its syntax tree with docstrings
removed (`ast.dump` carries no comments, formatting or line numbers), so an edit that changes no
behaviour changes no key, while any edit that could (a constant, a phrase, an operator) does.
joblib's Memory hashes a function's code the same way; DVC keys a stage on its code dependencies.

What it cannot see: code reached other than by an import statement (a module named in a config
string and imported by `importlib`; the package has none today) and what is not Python (a data file
read at run time; the stage config or the upstream artifacts' contents cover those a stage reads).
Explicit exclusions: `EXCLUDED`, the machinery around every stage. Computed once per process per
module; parsed trees are remembered by source hash in `__pycache__`, so fingerprinting every stage
takes ~60 ms per run (~0.4 s when every module was edited; measured on 2 busy cores).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import sys
from pathlib import Path

PACKAGE = "reasonbridge"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
# The machinery around every stage, not part of any: how an artifact is stored, checked and keyed
# (this package) and when a job may stop (preemption). They decide no artifact's contents, and
# counting them would recompute the whole cache for a change in how it is listed or locked.
EXCLUDED = frozenset({"reasonbridge.cache", "reasonbridge.cache.code", "reasonbridge.preemption"})


def _module_file(name: str, root: Path) -> Path | None:
    """The file of module ``name`` (``reasonbridge.x.y``) under ``root`` (the package's folder)."""
    parts = name.split(".")[1:]
    base = root.joinpath(*parts) if parts else root
    for f in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if f is not None and f.is_file():
            return f
    return None


_SCOPES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _normalise(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Remove ``tree``'s docstrings in place; return the `reasonbridge` names it imports, anywhere in
    its body (modules, or names inside them: `_parse` keeps the modules), in one walk over the tree."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, _SCOPES):
            if node.body and _is_docstring(node.body[0]):
                node.body = node.body[1:] or [ast.Pass()]
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]  # `from m import sub` may be a module
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                parts = target.split(".")  # importing a.b.c runs a/__init__, a/b/__init__ too
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    found.discard(name)
    return found


@functools.lru_cache(maxsize=None)
def _memo(root: Path) -> dict:
    """Parsed modules by the hash of their source, kept beside the bytecode (`__pycache__`, ignored by
    git): parsing the package takes ~0.4 s, reading this ~10 ms. Stale entries are harmless: an
    entry is found only by the exact source it was made from."""
    try:
        return json.loads((root / "__pycache__" / MEMO).read_text())
    except (OSError, ValueError):
        return {}


MEMO = "reasonbridge-code-fingerprints.json"
MEMO_ENTRIES = 4000  # beyond this, only the entries this process used are kept
_unsaved: set[Path] = set()
_used: set[str] = set()


def _save_memo(root: Path) -> None:
    if root not in _unsaved:
        return
    _unsaved.discard(root)
    folder = root / "__pycache__"
    try:
        folder.mkdir(exist_ok=True)
        tmp = folder / f"{MEMO}.{os.getpid()}.tmp"
        memo = _memo(root)
        if len(memo) > MEMO_ENTRIES:
            memo = {k: v for k, v in memo.items() if k in _used}
        tmp.write_text(json.dumps(memo))
        tmp.replace(folder / MEMO)
    except OSError:  # a read-only install: parse again next time
        pass


@functools.lru_cache(maxsize=None)
def _parse(name: str, root: Path) -> tuple[str, frozenset[str]]:
    """(hash of the module's normalised syntax tree, the reasonbridge modules it imports)."""
    path = _module_file(name, root)
    if path is None:
        raise ModuleNotFoundError(f"no module {name} under {root}")
    source = path.read_bytes()
    is_package = path.name == "__init__.py"
    memo_key = hashlib.sha256(b"%d.%d:%s:%d:" % (*sys.version_info[:2], name.encode(), is_package) + source).hexdigest()
    memo = _memo(root)
    if memo_key not in memo:
        tree = ast.parse(source, filename=str(path))
        names = _normalise(tree, name, is_package)
        memo[memo_key] = [hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16], sorted(names)]
        _unsaved.add(root)
    _used.add(memo_key)
    digest, names = memo[memo_key]
    return digest, frozenset(n for n in names if _module_file(n, root) is not None)


def module_hashes(root_module: str, root: Path | None = None) -> dict[str, str]:
    """{module: hash of its normalised code} for ``root_module`` and everything it imports, transitively
    (``root``: the package's folder, by default the one this module is in)."""
    return dict(_module_hashes(root_module, root or PACKAGE_DIR))


@functools.lru_cache(maxsize=None)
def _module_hashes(root_module: str, root: Path) -> tuple[tuple[str, str], ...]:
    seen: dict[str, str] = {}
    todo = [root_module]
    while todo:
        name = todo.pop()
        if name in seen or name in EXCLUDED:
            continue
        digest, deps = _parse(name, root)
        seen[name] = digest
        todo.extend(sorted(deps - seen.keys()))
    _save_memo(root)
    return tuple(sorted(seen.items()))


def fingerprint_of(hashes: dict[str, str]) -> str:
    """One hash for a set of module hashes (what a stage key carries); the Python version is part of
    it, since `ast.dump` and the interpreter's numerics may differ between minor versions."""
    blob = json.dumps({"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "modules": hashes},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def code_fingerprint(root_module: str, root: Path | None = None) -> str:
    """The fingerprint of the code ``root_module`` runs: it and its transitive reasonbridge imports."""
    return _code_fingerprint(root_module, root or PACKAGE_DIR)


@functools.lru_cache(maxsize=None)
def _code_fingerprint(root_module: str, root: Path) -> str:
    return fingerprint_of(module_hashes(root_module, root))


def changed_modules(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The modules whose code differs between two `module_hashes` (added, removed or edited)."""
    return sorted(m for m in old.keys() | new.keys() if old.get(m) != new.get(m))


# Libraries whose version can change a stage's numbers (kernels, tokenisation, adapters, answer checking,
# generation). Recorded in every artifact's manifest; a cache hit made under other versions is logged
# and tagged, not missed (see `library_differences`).
NUMERIC_LIBRARIES = ("torch", "transformers", "tokenizers", "peft", "accelerate", "safetensors", "numpy",
                     "sympy", "math-verify", "lm_eval", "vllm")


@functools.lru_cache(maxsize=None)
def library_versions() -> dict[str, str]:
    """{library: installed version} for the numeric libraries (those not installed are left out)."""
    from importlib import metadata
    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for lib in NUMERIC_LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


def library_differences(made: dict[str, str] | None, now: dict[str, str] | None = None) -> dict[str, str]:
    """{library: "made-version -> current-version"} for every library whose version differs."""
    now = library_versions() if now is None else now
    made = made or {}
    return {lib: f"{made.get(lib, 'absent')} -> {now.get(lib, 'absent')}"
            for lib in sorted(made.keys() | now.keys()) if made.get(lib) != now.get(lib)}


def source_commit(root: Path | None = None) -> dict[str, str | bool]:
    """{commit, dirty} of the git checkout the package runs from ({} outside one)."""
    return dict(_source_commit(root or PACKAGE_DIR))


@functools.lru_cache(maxsize=None)
def _source_commit(root: Path) -> tuple:
    import subprocess
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5).stdout.strip()
        if not commit:
            return ()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (("commit", commit), ("dirty", bool(dirty)))
    except (OSError, subprocess.SubprocessError):
        return ()


def provenance(root_module: str, root: Path | None = None) -> dict:
    """What a manifest records about the code and libraries that made an artifact."""
    hashes = module_hashes(root_module, root)
    return {**source_commit(), "code": {"root": root_module, "fingerprint": fingerprint_of(hashes),
                                        "modules": hashes}, "libraries": library_versions()}
