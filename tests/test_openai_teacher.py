"""The openai teacher against a real OpenAI-compatible server (`transformers serve` with
SmolLM2-135M-Instruct on 127.0.0.1), with faults injected by a small proxy in front of it."""
from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from reasonbridge.curation.teacher_cache import Budget, BudgetExceeded, TeacherCache, collect_traces
from reasonbridge.curation.teachers.openai import OpenAITeacher, TeacherError, parse_retry_after

pytestmark = pytest.mark.slow
SECRET = "sk-test-do-not-log-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(smollm_folder):
    """`transformers serve <folder>` on a free port; yields its base URL and the model name."""
    port = _free_port()
    cli = Path(sys.executable).parent / "transformers"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([str(cli), "serve", str(smollm_folder), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode()[-3000:])
                time.sleep(0.5)
        else:
            raise RuntimeError("transformers serve did not come up in 120 s")
        yield f"http://127.0.0.1:{port}", str(smollm_folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


class FaultProxy:
    """Forwards to the server; ``faults`` are consumed one per request first:
    "429" (with Retry-After), "500", "malformed" (200 with a broken body), "timeout" (sleeps)."""

    def __init__(self, upstream: str):
        self.upstream, self.faults, self.requests, self.auth = upstream, [], 0, []
        self.timeout_sleep = 1.0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    proxy.requests += 1
                    proxy.auth.append(self.headers.get("Authorization"))
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault == "429":
                    return self._reply(429, b'{"error": "rate limited"}', {"Retry-After": "2"})
                if fault == "500":
                    return self._reply(500, b'{"error": "boom"}')
                if fault == "malformed":
                    return self._reply(200, b'{"choices": [{"message": ')
                if fault == "timeout":
                    time.sleep(proxy.timeout_sleep)
                    return self._reply(504, b"late")
                request = urllib.request.Request(proxy.upstream + self.path, data=body,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=300) as r:
                        self._reply(r.status, r.read())
                except urllib.error.HTTPError as e:  # pass the server's own errors through
                    self._reply(e.code, e.read())

            def _reply(self, code, payload, headers=None):
                try:
                    self.send_response(code)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy(server):
    p = FaultProxy(server[0])
    yield p
    p.close()


def _teacher(url, model, **kw):
    kw = {"max_tokens": 8, "concurrency": 2, "timeout_s": 60, "max_retries": 4, "backoff_s": 0.5, **kw}
    t = OpenAITeacher(base_url=url, model=model, **kw)
    t.waits = []
    t.sleep = t.waits.append  # record the backoff instead of sleeping through it
    return t


PROBLEMS = [{"id": f"q{i}", "problem": f"What is {i} plus {i + 1}?", "answer": str(2 * i + 1), "domain": "97",
             "difficulty": 1} for i in range(6)]


def test_real_server_traces_usage_cost_and_secret_stays_out(server, proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHER_KEY", SECRET)
    teacher = _teacher(proxy.url, server[1], api_key_env="TEACHER_KEY", prices={server[1]: [100.0, 200.0]},
                       max_cost_usd=5.0)
    cache = TeacherCache(tmp_path, teacher.identity)
    traces, usage = collect_traces(teacher, PROBLEMS[:3], cache, Budget(None, 5.0))
    assert usage["queries"] == 3 and proxy.requests == 3 and all(t["text"] for t in traces)
    assert proxy.auth == [f"Bearer {SECRET}"] * 3
    entries = list(cache.entries.values())
    tokens = [(e["provenance"]["usage"]["prompt_tokens"], e["provenance"]["usage"]["completion_tokens"]) for e in entries]
    assert all(p > 10 and 0 < c <= 8 for p, c in tokens)
    assert usage["cost_usd"] == pytest.approx(sum(p * 100 + c * 200 for p, c in tokens) / 1e6)
    assert all(e["provenance"]["endpoint"] == proxy.url + "/chat/completions" for e in entries)
    assert SECRET not in cache.path.read_text() and SECRET not in json.dumps(teacher.identity)
    again, usage2 = collect_traces(teacher, PROBLEMS[:3], TeacherCache(tmp_path, teacher.identity), Budget(None, 5.0))
    assert usage2 == {"queries": 0, "cache_hits": 3, "cost_usd": 0.0} and proxy.requests == 3
    assert [t["text"] for t in again] == [t["text"] for t in traces]


def test_faults_are_retried_with_backoff_and_retry_after(server, proxy, tmp_path):
    proxy.faults = ["429", "500", "malformed"]
    teacher = _teacher(proxy.url, server[1], concurrency=1)
    traces, usage = collect_traces(teacher, PROBLEMS[:1], TeacherCache(tmp_path, teacher.identity), Budget(None, None))
    assert traces[0]["text"] and proxy.requests == 4 and usage["queries"] == 1
    assert teacher.waits == [2.0, 1.0, 2.0]  # Retry-After, then 0.5 * 2^attempt
    assert traces[0]["provenance"]["attempts"] == 4
    proxy.faults = ["timeout", "500"]  # a timed-out attempt is retried too
    impatient = _teacher(proxy.url, server[1], timeout_s=0.5, max_retries=1)
    with pytest.raises(TeacherError, match="failed after 2 attempts: HTTP 500"):
        impatient.complete([{"role": "user", "content": "hi"}])
    assert impatient.waits == [0.5]
    proxy.faults = ["timeout"]
    with pytest.raises(TeacherError, match="failed after 1 attempts: TimeoutError"):
        _teacher(proxy.url, server[1], timeout_s=0.5, max_retries=0).complete([{"role": "user", "content": "hi"}])


def test_unreachable_teacher_fails_clearly_and_keeps_finished_answers(server, proxy, tmp_path):
    teacher = _teacher(proxy.url, server[1])
    cache = TeacherCache(tmp_path, teacher.identity)
    collect_traces(teacher, PROBLEMS[:2], cache, Budget(None, None))
    dead = _teacher(f"http://127.0.0.1:{_free_port()}/v1", server[1], max_retries=1)
    dead.identity = teacher.identity  # the same teacher, moved behind a closed port
    with pytest.raises(TeacherError, match=r"failed after 2 attempts: URLError: .*(refused|Errno)"):
        collect_traces(dead, PROBLEMS[:4], cache, Budget(None, None))
    assert len(TeacherCache(tmp_path, teacher.identity).entries) == 2
    with pytest.raises(TeacherError, match=r"HTTP 4\d\d"):  # a model the server does not have fails at once
        _teacher(proxy.url, "/no/such/model").complete([{"role": "user", "content": "hi"}])


def test_caps_hold_exactly_under_concurrency_and_across_restarts(server, proxy, tmp_path):
    teacher = _teacher(proxy.url, server[1], concurrency=4)
    cache = TeacherCache(tmp_path, teacher.identity)
    with pytest.raises(BudgetExceeded, match="max_queries=3"):
        collect_traces(teacher, PROBLEMS, cache, Budget(3, None, queries=cache.queries))
    assert proxy.requests == 3
    restarted = TeacherCache(tmp_path, teacher.identity)
    assert restarted.queries == 3 and len(restarted.entries) == 3
    with pytest.raises(BudgetExceeded):
        collect_traces(teacher, PROBLEMS, restarted, Budget(3, None, queries=restarted.queries))
    assert proxy.requests == 3
    # cost: each query may cost up to its worst case; the cap admits exactly what fits
    priced = _teacher(proxy.url, server[1], concurrency=4, prices={server[1]: [1000.0, 1000.0]}, max_cost_usd=1.0)
    worst = priced.worst_cost(json.loads(priced.prompt(PROBLEMS[0])))
    cost_cache = TeacherCache(tmp_path / "cost", priced.identity)
    with pytest.raises(BudgetExceeded, match="max_cost_usd=1.0"):
        collect_traces(priced, PROBLEMS, cost_cache, Budget(None, 1.0))
    assert 0 < cost_cache.cost_usd <= 1.0 and len(cost_cache.entries) >= int(1.0 // worst)


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None
    assert 0 <= parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))) <= 6


def test_llm_domain_classifier_through_the_teacher_cache(server, proxy, tmp_path):
    from reasonbridge.curation.filters import MSC_CODES, classify_domains_with_teacher, parse_domain
    assert parse_domain("The MSC code is 11.") == "11" and parse_domain("2024 or 99") is None
    problems = [{"id": "a", "problem": "What is the remainder when 100 is divided by 7?", "domain": None},
                {"id": "b", "problem": "A fair coin is tossed twice. What is the probability of two heads?",
                 "domain": "60"}]
    teacher = _teacher(proxy.url, server[1], max_tokens=4)
    cache = TeacherCache(tmp_path, teacher.identity)
    counts = classify_domains_with_teacher(problems, teacher, cache, Budget(None, None))
    assert proxy.requests == 1 and sum(counts.values()) == 1  # only the problem without a domain is asked
    assert problems[0]["domain"] in MSC_CODES and problems[0]["meta"]["domain_by"] in ("teacher", "rules")
    assert problems[1]["domain"] == "60" and len(cache.entries) == 1
    problems[0]["domain"] = None
    classify_domains_with_teacher(problems, teacher, TeacherCache(tmp_path, teacher.identity), Budget(None, None))
    assert proxy.requests == 1  # answered from the cache
