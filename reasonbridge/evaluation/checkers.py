"""Answer checkers: each verdict says which checker judged it and why.

  exact    the synthetic benchmark: last \\boxed{} against the gold, normalised (answers.py)
  math     math-verify: ``verify(parse(gold), parse(prediction))`` with the gold wrapped in $...$
           so it parses; run in worker processes because its timeouts are signal based
  integer  AIME: the answer as an integer ("025" = 25)
  choice   multiple choice: the option letter, extracted robustly
  bbh      BIG-Bench Hard: exact match after BBH's normalisation
  code     HumanEval: the completion runs against the tests in a fresh interpreter inside an OS
           sandbox (sandbox.py: bubblewrap namespaces, read-only filesystem, rlimits), with a
           timeout; without one it refuses to start unless benchmark.unsafe_unsandboxed_code=true

An output without an answer is wrong with the reason "no answer extracted"; nothing a model
writes makes a checker raise.
"""
from __future__ import annotations

import multiprocessing
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from reasonbridge.evaluation import sandbox
from reasonbridge.answers import check_exact, extract_boxed

NO_ANSWER = "no answer extracted"
CHECKERS = ("exact", "math", "integer", "choice", "bbh", "code")


@dataclass
class Verdict:
    correct: bool
    extracted: str | None
    checker: str
    reason: str
    isolation: str | None = None  # code: which isolation ran the program (sandbox.ISOLATION_*)

    def as_dict(self) -> dict:
        return asdict(self)


# -- math (math-verify) --------------------------------------------------------------------
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")


def _strip_thousands(text: str) -> str:
    """"1,234,567" -> "1234567" (only well-formed groups, so "(1,2)" stays a tuple)."""
    return _THOUSANDS.sub(lambda m: m[1].replace(",", ""), text)


def _wrap_gold(gold: str) -> str:
    gold = gold.strip()
    return gold if "\\boxed" in gold or gold.startswith("$") else f"${gold}$"


_TAIL_CHARS = 500


def verify_math(prediction: str, gold: str) -> tuple[bool, str | None, str]:
    """(correct, extracted, reason) with math-verify; call it in a process's main thread."""
    from math_verify import parse, verify

    try:
        gold_parsed = parse(_wrap_gold(_strip_thousands(gold)))
        if not gold_parsed:
            return False, None, f"gold {gold!r} does not parse"
        # math-verify prefers the last \boxed{} anyway; handing it just that box spares it a scan
        # of the whole reasoning for other candidate expressions (the bulk of its time)
        # (without a box, the answer is stated at the end: its last lines suffice)
        boxed = extract_boxed(prediction)
        tail = prediction[-_TAIL_CHARS:]
        pred_parsed = parse(_strip_thousands(f"\\boxed{{{boxed}}}" if boxed else tail))
        if not pred_parsed and boxed:
            pred_parsed = parse(_strip_thousands(tail))
        if not pred_parsed:
            return False, None, NO_ANSWER
        extracted = str(pred_parsed[-1] if isinstance(pred_parsed[-1], str) else pred_parsed[0])
        ok = verify(gold_parsed, pred_parsed)  # gold first: verify is not symmetric
        return bool(ok), extracted, "equivalent (math-verify)" if ok else "not equivalent (math-verify)"
    except Exception as e:  # a pathological expression must not end the run
        return False, None, f"math-verify error: {type(e).__name__}: {e}"[:300]


def _verify_pair(pair: tuple[str, str]) -> tuple[bool, str | None, str]:
    return verify_math(*pair)


def _import_math_verify() -> None:
    import math_verify  # noqa: F401  (workers import it while the model still generates)


class MathVerifier:
    """A small process pool for math-verify; a verification stuck past ``timeout_s`` is wrong
    ("verification timed out") and its pool is replaced."""

    def __init__(self, workers: int = 2, timeout_s: float = 60.0):
        self.workers, self.timeout_s = workers, timeout_s
        self._pool = None

    def _get_pool(self):
        if self._pool is None:
            # spawn: the parent holds torch's threads; a forked child could inherit a held lock
            self._pool = multiprocessing.get_context("spawn").Pool(self.workers, initializer=_import_math_verify)
        return self._pool

    def start(self) -> None:
        """Start the workers now (they warm up in the background)."""
        self._get_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def check(self, pairs: list[tuple[str, str]]) -> list[tuple[bool, str | None, str]]:
        if not pairs:
            return []
        pending = [self._get_pool().apply_async(_verify_pair, (p,)) for p in pairs]
        results = []
        for i, job in enumerate(pending):
            try:
                results.append(job.get(timeout=self.timeout_s))
            except multiprocessing.TimeoutError:
                self.close()  # the stuck worker dies with the pool; re-check the rest in a fresh one
                return results + [(False, None, "verification timed out")] + self.check(pairs[i + 1:])
        return results


# -- integers (AIME) -----------------------------------------------------------------------
_ANSWER_IS = re.compile(r"(?:final answer|answer)\s*(?:is|:)?\s*[:=]?\s*\$?\\?\(?\s*([^\n$]+)", re.IGNORECASE)
_INT = re.compile(r"[-+]?\d[\d,]*")


def check_integer(output: str, gold: str) -> Verdict:
    extracted = extract_boxed(output)
    if extracted is None:
        m = list(_ANSWER_IS.finditer(output))
        extracted = m[-1][1].strip() if m else None
    if extracted is None:
        numbers = _INT.findall(output)
        extracted = numbers[-1] if numbers else None
    if extracted is None:
        return Verdict(False, None, "integer", NO_ANSWER)
    cleaned = re.sub(r"[\s$,{}]|\\[,!;]|\\text|\\mathrm|\^\\circ|\.$", "", extracted)
    m = re.fullmatch(r"[-+]?\d+(?:\.0+)?", cleaned) or re.match(r"[-+]?\d+", cleaned)
    if not m:
        return Verdict(False, extracted, "integer", f"{extracted!r} is not an integer")
    value = int(float(m[0]))
    try:
        target = int(str(gold).strip())
    except ValueError:
        return Verdict(False, str(value), "integer", f"gold {gold!r} is not an integer")
    ok = value == target
    return Verdict(ok, str(value), "integer", f"{value} {'==' if ok else '!='} {target}")


# -- multiple choice -----------------------------------------------------------------------
def extract_letter(output: str, n_options: int, options: list[str] | None = None) -> str | None:
    """The option letter a model chose: \\boxed{B}, "the answer is (B)", "Answer: B", a line
    "B)" or "(B)", or an option's exact text; the last such statement wins."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n_options]
    cls = f"[{letters}{letters.lower()}]"
    boxed = extract_boxed(output)
    if boxed is not None:
        inner = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", boxed).strip(" ().:$")
        if re.fullmatch(cls, inner):
            return inner.upper()
        m = re.match(rf"\(?({cls})\)?[).:\s]", inner + " ")
        if m and m[1].isupper():
            return m[1]
    patterns = [
        rf"answer\s*(?:is|:)\s*(?:option\s*)?[\(\[]?\**\s*({cls})\b",
        rf"(?:option|choice)\s*[\(\[]?({cls})[\)\]]?\s*is\s*(?:correct|the answer)",
        rf"^\s*[\(\[]?([{letters}])[\)\].:]?\s*$",
        rf"\(([{letters}])\)",
    ]
    for pattern in patterns:
        found = list(re.finditer(pattern, output, re.IGNORECASE | re.MULTILINE))
        if found:
            return found[-1][1].upper()
    if options:
        tail = output.strip().splitlines()[-1].strip().rstrip(".").lower() if output.strip() else ""
        for k, opt in enumerate(options):
            if tail and tail == opt.strip().rstrip(".").lower():
                return letters[k]
    return None


def check_choice(output: str, gold: str, meta: dict | None = None) -> Verdict:
    options = (meta or {}).get("choices")
    n = len(options) if options else max(4, "ABCDEFGHIJKLMNOPQRSTUVWXYZ".index(gold.upper()) + 1)
    letter = extract_letter(output, n, options)
    if letter is None:
        return Verdict(False, None, "choice", NO_ANSWER)
    ok = letter == gold.strip().upper()
    return Verdict(ok, letter, "choice", f"chose {letter}, gold {gold.strip().upper()}")


# -- BBH -----------------------------------------------------------------------------------
def normalize_bbh(text: str) -> str:
    """BBH's comparison form: trimmed, lower case, no trailing period, an option "(A)" as "a"."""
    t = re.sub(r"\s+", " ", text.strip().strip("*").strip()).rstrip(".").strip().lower()
    if m := re.fullmatch(r"\(?([a-r])\)(?:\s.*)?|\(([a-r])\)?", t):
        return m[1] or m[2]
    return t


def check_bbh(output: str, gold: str) -> Verdict:
    extracted = extract_boxed(output)
    if extracted is None:
        found = re.findall(r"the answer is\s*:?\s*(.+?)\s*(?:\.\s*$|$)", output, re.IGNORECASE | re.MULTILINE)
        extracted = found[-1] if found else None
    if extracted is None:
        lines = [ln for ln in output.strip().splitlines() if ln.strip()]
        extracted = lines[-1] if lines else None
    if extracted is None:
        return Verdict(False, None, "bbh", NO_ANSWER)
    extracted = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", extracted)
    ok = normalize_bbh(extracted) == normalize_bbh(gold)
    return Verdict(ok, extracted.strip(), "bbh", f"{normalize_bbh(extracted)!r} {'==' if ok else '!='} "
                                                   f"{normalize_bbh(gold)!r}")


# -- code (HumanEval) ----------------------------------------------------------------------
_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)

# Prepended to a program only on the unsafe path (benchmark.unsafe_unsandboxed_code=true, no OS
# sandbox): resource limits, then a few Python functions replaced. That is no isolation (a program
# imports _socket or ctypes and gets past it); the sandbox sets its limits with prlimit instead.
_GUARD = """\
import resource as _r
for _lim, _val in (({as_}, {memory}), ({cpu}, {cpu_s}), ({fsize}, {fsize_bytes}), ({core}, 0)):
    _r.setrlimit(_lim, (_val, _val))
import socket as _s, subprocess as _sp, os as _os
def _blocked(*a, **k):
    raise PermissionError("network and subprocesses are disabled in the HumanEval sandbox")
_s.socket = _blocked; _s.create_connection = _blocked; _sp.Popen = _blocked
_os.system = _blocked; _os.fork = _blocked
del _r, _s, _sp, _os, _lim, _val
"""


def _guard(memory_mb: int, cpu_s: int) -> str:
    import resource
    return _GUARD.format(as_=int(resource.RLIMIT_AS), memory=memory_mb << 20, cpu=int(resource.RLIMIT_CPU),
                         cpu_s=cpu_s, fsize=int(resource.RLIMIT_FSIZE), fsize_bytes=16 << 20,
                         core=int(resource.RLIMIT_CORE))


def extract_code(output: str) -> str | None:
    blocks = _FENCE.findall(output)
    code = max(blocks, key=len) if blocks else output
    return code if code.strip() else None


def build_program(prompt: str, completion: str, tests: str, entry_point: str, *, memory_mb: int = 1024,
                  cpu_s: int = 11, guard: bool = True) -> str:
    """A complete function from the model (with `def entry_point`) replaces the prompt's stub,
    keeping the prompt's imports; anything else continues the prompt."""
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", completion, re.MULTILINE):
        imports = "\n".join(ln for ln in prompt.splitlines() if re.match(r"(from\s+\S+\s+)?import\s", ln))
        body = f"{imports}\n{completion}"
    else:
        body = prompt + completion
    prelude = _guard(memory_mb, cpu_s) if guard else ""
    return f"{prelude}\n{body}\n\n{tests}\n\ncheck({entry_point})\n"


def run_program(program: str, *, timeout_s: float = 10.0,
                isolation: str = sandbox.ISOLATION_BWRAP) -> tuple[bool, str]:
    """(passed, reason) for a Python program run in a fresh interpreter: inside the OS sandbox, or
    with ``sandbox.ISOLATION_NONE`` (opted into) unisolated, as the harness's own user, in an empty
    temporary folder with a minimal environment (resource limits then come from its prelude)."""
    if isolation == sandbox.ISOLATION_BWRAP:
        try:
            proc = sandbox.run(program, timeout_s=timeout_s, limits=sandbox.Limits(cpu_s=int(timeout_s) + 1))
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout_s:g}s"
        return _outcome(proc)
    with tempfile.TemporaryDirectory(prefix="reasonbridge-code-") as tmp:
        script = Path(tmp) / "program.py"
        script.write_text(program)
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
        try:
            proc = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp, env=env, capture_output=True,
                                  text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout_s:g}s"
    return _outcome(proc)


def _outcome(proc: subprocess.CompletedProcess) -> tuple[bool, str]:
    if proc.returncode == 0:
        return True, "passed all tests"
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return False, f"failed: {err[-1][:200] if err else f'exit status {proc.returncode}'}"


def check_code(output: str, prompt: str, tests: str, entry_point: str, *, timeout_s: float = 10.0,
               isolation: str = sandbox.ISOLATION_BWRAP) -> Verdict:
    code = extract_code(output)
    if code is None:
        return Verdict(False, None, "code", NO_ANSWER, isolation)
    program = build_program(prompt, code, tests, entry_point, cpu_s=int(timeout_s) + 1,
                            guard=isolation != sandbox.ISOLATION_BWRAP)
    passed, reason = run_program(program, timeout_s=timeout_s, isolation=isolation)
    return Verdict(passed, code, "code", reason, isolation)


# -- dispatch ------------------------------------------------------------------------------
class Checker:
    """Judges batches of (output, problem) for one checker; a context manager, so the math
    worker pool is shut down when evaluation ends. The code checker raises
    `sandbox.SandboxUnavailable` here, before any work, when no OS sandbox can run and
    ``unsafe_unsandboxed_code`` is not set."""

    def __init__(self, name: str, *, workers: int = 2, code_timeout_s: float = 10.0,
                 unsafe_unsandboxed_code: bool = False):
        if name not in CHECKERS:
            raise ValueError(f"unknown checker {name!r}; expected one of {CHECKERS}")
        self.name, self.workers, self.code_timeout_s = name, workers, code_timeout_s
        self.isolation = sandbox.require(unsafe_unsandboxed_code) if name == "code" else None
        self._math = MathVerifier(workers) if name == "math" else None

    def __enter__(self) -> "Checker":
        if self._math is not None:
            self._math.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._math is not None:
            self._math.close()

    def check_one(self, output: str, problem: dict) -> Verdict:
        return self.check([output], [problem])[0]

    def check(self, outputs: list[str], problems: list[dict]) -> list[Verdict]:
        name = self.name
        if name == "math":
            return [Verdict(ok, ext, "math", why)
                    for ok, ext, why in self._math.check([(o, str(p["answer"])) for o, p in zip(outputs, problems)])]
        if name == "code":
            def one(pair):
                o, p = pair
                return check_code(o, p["problem"], p["meta"]["tests"], p["meta"]["entry_point"],
                                  timeout_s=self.code_timeout_s, isolation=self.isolation)
            with ThreadPoolExecutor(self.workers) as pool:  # each test runs in its own subprocess
                return list(pool.map(one, zip(outputs, problems)))
        verdicts = []
        for o, p in zip(outputs, problems):
            gold = str(p["answer"])
            if name == "exact":
                ok, ext, why = check_exact(o, gold)
                verdicts.append(Verdict(ok, ext, "exact", why))
            elif name == "integer":
                verdicts.append(check_integer(o, gold))
            elif name == "choice":
                verdicts.append(check_choice(o, gold, p.get("meta")))
            else:
                verdicts.append(check_bbh(o, gold))
        return verdicts
