"""A teacher behind any OpenAI-compatible chat-completions endpoint (hosted APIs, vLLM,
`transformers serve`), with bounded concurrency, timeouts, retries and hard budget caps.

Retries: 429 and 5xx responses, timeouts, dropped connections and malformed bodies are retried
up to `max_retries` times, waiting `Retry-After` when the server sends it, else `backoff_s`
doubling each attempt. Other 4xx responses (bad key, unknown model) fail at once. The API key
is read from the environment variable named by `api_key_env` and only ever sent in the
Authorization header: it is not part of the teacher's identity, its errors or its ledger.
"""
from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable

from reasonbridge.config import ConfigError
from reasonbridge.curation.teacher_cache import Budget, provenance
from reasonbridge.curation.teachers import teacher_messages
from reasonbridge.errors import ServiceUnavailable

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 300.0
PROMPT_OVERHEAD_TOKENS = 64  # chat-template tokens around the messages, for the worst-case cost


class TeacherError(ServiceUnavailable):
    """The endpoint refused a query for good (e.g. HTTP 401/404) or kept failing after retries."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def price_problem(model: str, prices: dict | None, max_cost_usd: float | None) -> str | None:
    """What is wrong with the price of ``model`` for this cost cap, and how to go on; None: nothing."""
    price = (prices or {}).get(model)
    if price is not None and len(price) != 2:
        return (f"invalid config value teacher.prices.{model}={list(price)}: expected [input, output] "
                "USD per 1M tokens")
    if max_cost_usd is not None and price is None:
        # a name Hydra can take as a key on the command line; others go in a YAML file's prices
        add = (f"+teacher.prices.{model}=[IN,OUT]" if re.fullmatch(r"[A-Za-z0-9_-]+", model)
               else f"{model!r}: [IN, OUT] under teacher.prices in a conf/teacher/ file")
        return (f"teacher.max_cost_usd={max_cost_usd} is set but teacher.prices has no entry for model {model!r}, "
                f"so the cap cannot be enforced: add its price ({add}, USD per 1M tokens) or, for a local "
                "server that costs nothing, lift the cap with teacher.max_cost_usd=null")
    return None


def key_problem(api_key_env: str | None) -> str | None:
    """What is wrong with the API key's variable; None: it is set (or no key is used)."""
    if api_key_env and not os.environ.get(api_key_env):
        return (f"teacher.api_key_env={api_key_env}: the environment variable {api_key_env} is not set; "
                f"export {api_key_env}=<your key>, or teacher.api_key_env=null for a server that needs no key")
    return None


class OpenAITeacher:
    name = "openai"

    def __init__(self, *, base_url: str, model: str, api_key_env: str | None = None, max_tokens: int = 1024,
                 temperature: float = 0.0, concurrency: int = 4, timeout_s: float = 120.0, max_retries: int = 5,
                 backoff_s: float = 1.0, prices: dict[str, list[float]] | None = None,
                 max_cost_usd: float | None = None, system_prompt: str | None = None, seed: int = 0):
        self.base_url = base_url.rstrip("/")
        self.model, self.max_tokens, self.temperature = model, max_tokens, temperature
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.system_prompt, self.seed = system_prompt, seed
        self.price = (prices or {}).get(model)
        problem = price_problem(model, prices, max_cost_usd) or key_problem(api_key_env)
        if problem:
            raise ConfigError(problem)
        self._api_key = os.environ.get(api_key_env) if api_key_env else None
        self.endpoint = f"{self.base_url}/chat/completions"
        self.identity = {"name": self.name, "base_url": self.base_url, "model": model,
                         "system_prompt": system_prompt}
        self.sampling = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        self.sleep = time.sleep  # replaced in tests to observe the waits

    @classmethod
    def from_config(cls, cfg, *, seed: int) -> "OpenAITeacher":
        return cls(base_url=cfg.base_url, model=cfg.model, api_key_env=cfg.api_key_env, max_tokens=cfg.max_tokens,
                   temperature=cfg.temperature, concurrency=cfg.concurrency, timeout_s=cfg.timeout_s,
                   max_retries=cfg.max_retries, backoff_s=cfg.backoff_s,
                   prices={k: list(v) for k, v in (cfg.prices or {}).items()}, max_cost_usd=cfg.max_cost_usd,
                   system_prompt=cfg.system_prompt, seed=seed)

    # -- cost ------------------------------------------------------------------------------
    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        if self.price is None:
            return 0.0
        return (prompt_tokens * self.price[0] + completion_tokens * self.price[1]) / 1e6

    def worst_cost(self, messages: list[dict]) -> float:
        """An upper bound on a query's cost: a token is at least one byte of the prompt."""
        prompt_bytes = sum(len(m["content"].encode()) for m in messages)
        return self.cost(prompt_bytes + PROMPT_OVERHEAD_TOKENS * len(messages), self.max_tokens)

    # -- queries ---------------------------------------------------------------------------
    def prompt(self, problem: dict) -> str:
        return json.dumps(teacher_messages(problem["problem"], self.system_prompt), ensure_ascii=False)

    def _post_once(self, body: bytes) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode(errors="replace")
            if e.code == 429 or e.code >= 500:
                raise _Retryable(f"HTTP {e.code}: {detail}", parse_retry_after(e.headers.get("Retry-After")))
            raise TeacherError(f"{self.endpoint} answered HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError) as e:
            raise _Retryable(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"]["content"]
            if not isinstance(content, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Retryable(f"malformed response ({type(e).__name__}: {e}): {raw[:200]!r}") from None
        return data

    def complete(self, messages: list[dict]) -> tuple[dict, int]:
        """The parsed response of one query and the number of attempts it took."""
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                           "temperature": self.temperature, "seed": self.seed, "stream": False}).encode()
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._post_once(body), attempt + 1
            except _Retryable as e:
                last = str(e)
                if attempt == self.max_retries:
                    break
                wait_s = e.retry_after if e.retry_after is not None else self.backoff_s * 2 ** attempt
                wait_s = min(wait_s, MAX_RETRY_AFTER_S)
                # waiting is visible: what failed, which attempt, how long until the next
                log.warning("teacher %s: attempt %d/%d failed (%s); retry %d/%d after %.3gs", self.endpoint,
                            attempt + 1, self.max_retries + 1, last[:200], attempt + 1, self.max_retries, wait_s)
                self.sleep(wait_s)
        raise TeacherError(f"teacher endpoint {self.endpoint} failed after {self.max_retries + 1} attempts: {last}. "
                           "Answers received so far are kept in the teacher cache; run the same command again once "
                           "the endpoint answers (teacher.max_retries and teacher.backoff_s set how long to wait)")

    def _one(self, key: str, prompt: str, emit: Callable, budget: Budget) -> None:
        messages = json.loads(prompt)
        worst = self.worst_cost(messages)
        budget.reserve(worst)
        start, actual = time.perf_counter(), 0.0
        try:
            data, attempts = self.complete(messages)
            usage = data.get("usage") or {}
            actual = self.cost(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
            text = data["choices"][0]["message"]["content"]
            emit(key, {"text": text, "finish_reason": data["choices"][0].get("finish_reason")},
                 provenance(self.name, self.endpoint, usage, actual, time.perf_counter() - start, attempts))
        finally:
            budget.settle(worst, actual)

    def run(self, jobs: list[tuple[str, dict, str]], emit: Callable, budget: Budget) -> None:
        """Answer every job with at most `concurrency` queries in flight. On the first failure no
        new query starts; those in flight finish (and are cached) before the error is raised."""
        if not jobs:
            return
        stop = threading.Event()

        def task(job):
            if stop.is_set():
                return
            try:
                self._one(job[0], job[2], emit, budget)
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(task, job) for job in jobs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                for f in futures:
                    f.cancel()
        for f in futures:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()
