"""What can be known to fail before any stage runs, checked before any stage runs.

`validate()` (reasonbridge/config.py) judges the config alone; these look at the machine: the pool's
files, the teacher's key, price and endpoint, the model folders. Each check runs only when the run
goes as far as the stage that needs it (`stop_after`), and fails with one line naming the field,
the file and what to do: a `UserError` (exit 2), or `ServiceUnavailable` (exit 3) for a server
that does not answer a connection within `CONNECT_TIMEOUT_S`.
"""
from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path

from reasonbridge.config import STAGES, STOP_ALIASES, ConfigError
from reasonbridge.errors import ServiceUnavailable
from reasonbridge.io import DataError

CONNECT_TIMEOUT_S = 5.0  # a listening server accepts at once; a refused port fails at once
HUB_TIMEOUT_S = 10.0


def before_work(cfg) -> None:
    pool_files(cfg)
    teacher(cfg)
    models(cfg)


def reaches(cfg, stage: str) -> bool:
    """Whether this run goes as far as ``stage`` (`stop_after` and its aliases)."""
    stop = STOP_ALIASES.get(cfg.stop_after, cfg.stop_after)
    return stop is None or STAGES.index(stop) >= STAGES.index(stage)


# -- the pool's files ----------------------------------------------------------------------
def pool_files(cfg) -> None:
    if cfg.pool.name != "jsonl" or not reaches(cfg, "pool"):
        return
    for raw in cfg.pool.paths:
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        if not path.exists():
            raise DataError(f"pool.paths: {raw} does not exist (looked for {path}); give the path of a "
                            ".jsonl or .parquet file of problems")
        if not path.is_file():
            raise DataError(f"pool.paths: {raw} is not a file; give .jsonl or .parquet files")
        if _empty(path):
            raise DataError(f"pool.paths: {raw} holds no problems (the file is empty); a .jsonl pool file has "
                            "one JSON object per line")


def _empty(path: Path) -> bool:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        return pq.ParquetFile(path).metadata.num_rows == 0
    with path.open("rb") as f:  # the first line that is not blank decides; a BOM alone is empty
        return not any(line.strip().lstrip(b"\xef\xbb\xbf").strip() for line in f)


# -- the teacher ---------------------------------------------------------------------------
def teacher_needed(cfg) -> bool:
    return reaches(cfg, "traces") or (reaches(cfg, "pool") and cfg.pool.domain_classifier == "teacher")


def teacher(cfg) -> None:
    t = cfg.teacher
    if not teacher_needed(cfg):
        return
    if t.name == "hf_local":
        problem = model_folder_problem("teacher.model", t.model, hub=False)
        if problem:
            raise ConfigError(problem)
    if t.name != "openai":
        return
    from reasonbridge.curation.teachers.openai import key_problem, price_problem
    prices = {k: list(v) for k, v in (t.prices or {}).items()}
    problem = key_problem(t.api_key_env) or price_problem(t.model, prices, t.max_cost_usd)
    if problem:
        raise ConfigError(problem)
    endpoint_reachable("teacher.base_url", t.base_url, min(CONNECT_TIMEOUT_S, t.timeout_s))


def endpoint_reachable(key: str, url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to the server behind ``url`` (or to the proxy the environment names for it)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"invalid config value {key}={url!r}: expected an http:// or https:// URL")
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    via = ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            host, port, via = p.hostname, p.port or 80, f" through the proxy {proxy}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
    raise ServiceUnavailable(f"{key}={url}: cannot connect to {host}:{port}{via} ({why}, {timeout_s:g}s timeout); "
                             f"nothing was run. Start the server (or fix {key}) and run the same command again")


# -- model folders -------------------------------------------------------------------------
def models(cfg) -> None:
    m = cfg.model
    if m.source == "pretrained" and (reaches(cfg, "train") or (reaches(cfg, "data") and cfg.data.difficulty)):
        problem = model_folder_problem("model.path", m.path, hub=True)
        if problem:
            raise ConfigError(problem)
    if cfg.data.difficulty and reaches(cfg, "data"):
        for i, ref in enumerate(cfg.data.references):
            if ref.source == "pretrained":
                problem = model_folder_problem(f"data.references[{i}].path", ref.path, hub=False)
                if problem:
                    raise ConfigError(problem)
    if m.source == "api" and reaches(cfg, "eval"):
        if m.api_key_env and not os.environ.get(m.api_key_env):
            raise ConfigError(f"model.api_key_env={m.api_key_env}: the environment variable {m.api_key_env} is not "
                              f"set; export {m.api_key_env}=<your key>, or model.api_key_env=null")
        endpoint_reachable("model.base_url", m.base_url, min(CONNECT_TIMEOUT_S, m.timeout_s))


def model_folder_problem(key: str, path: str | None, *, hub: bool) -> str | None:
    """What is wrong with a model given as ``key=path`` (a folder with config.json or, with ``hub``,
    a Hugging Face Hub repo id this machine can fetch or has cached); None when it can be loaded."""
    folder = Path(str(path)).expanduser()
    if folder.is_dir():
        if (folder / "config.json").is_file():
            return None
        return f"{key}={path}: the folder has no config.json, so it is not a transformers model folder"
    if folder.exists():
        return f"{key}={path}: is a file; give a transformers model folder (one with config.json)"
    if not hub:
        return f"{key}={path}: no such folder; give a local transformers model folder (one with config.json)"
    why = _hub_problem(str(path))
    if why is None:
        return None
    return (f"{key}={path}: no such folder, and {why}; give a local model folder (one with config.json) or "
            "a hub id this machine can reach (e.g. HuggingFaceTB/SmolLM2-135M-Instruct)")


def _hub_problem(repo: str) -> str | None:
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    try:
        validate_repo_id(repo)
    except HFValidationError:
        return "not a hub repo id (org/name) either"
    if isinstance(try_to_load_from_cache(repo, "config.json"), str):
        return None  # downloaded before: transformers loads it offline
    if constants.HF_HUB_OFFLINE:
        return "the hub is offline (HF_HUB_OFFLINE) and the repo is not in the local hub cache"
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    try:
        HfApi().model_info(repo, timeout=HUB_TIMEOUT_S)
        return None
    except GatedRepoError:
        return None  # it exists; loading it asks for the token
    except RepositoryNotFoundError:
        return "no such model on the Hugging Face Hub"
    except Exception as e:  # no network, a proxy, a timeout
        return f"the Hugging Face Hub cannot be reached to look it up ({type(e).__name__})"
