"""Evaluation benchmarks read from local files in each public dataset's own format (or the hub).

Every benchmark becomes a list of problems ``{id, problem, answer, domain, source, meta}``:
``problem`` is the text the model sees (options included for multiple choice), ``answer`` the
gold in the form its checker expects (a letter, an integer, a LaTeX expression, ...), ``meta``
whatever the checker needs besides (HumanEval's tests) and the file/row it came from.

File formats (`benchmark.fields` maps canonical names to the file's columns):
  aime24       .jsonl  id, problem, answer ("025" and 25 are the same answer)
  math500      .jsonl  unique_id, problem, answer, subject, level
  gsm8k        .jsonl  question, answer (the gold is the number after "####")
  gpqa_diamond .csv    Question, Correct Answer, Incorrect Answer 1..3 (the authors' CSV)
  mmlu_stem    .jsonl/.parquet  question, subject, choices (list), answer (index) (cais/mmlu)
  logiqa       .jsonl  context, query, options (list), correct_option (index) (lucasmccabe/logiqa)
  bbh          a folder of <task>.json ({"examples": [{input, target}]}, suzgun/BIG-Bench-Hard)
               or .jsonl files with input, target
  humaneval    .jsonl(.gz)  task_id, prompt, test, entry_point (openai/human-eval)
"""
from __future__ import annotations

import csv
import gzip
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from reasonbridge.io import DataError, jsonl_objects
from reasonbridge.problems import SUBJECT_TO_MSC

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOCAL_PREFIX = "reasonbridge_"  # lm-eval task reasonbridge_<name>: the local benchmark <name>
MATH_INSTRUCTION = "Solve the problem step by step. Put the final answer in \\boxed{}."
CHOICE_INSTRUCTION = ("Think step by step, then give the letter of the correct option in \\boxed{}, "
                      "e.g. \\boxed{A}.")
BBH_INSTRUCTION = "Think step by step, then put the final answer in \\boxed{}."
CODE_INSTRUCTION = ("Complete the following Python function. Reply with the complete function in one "
                    "```python code block.")

# lm-eval's mmlu_stem group
MMLU_STEM = ("abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
             "college_computer_science", "college_mathematics", "college_physics", "computer_security",
             "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
             "high_school_chemistry", "high_school_computer_science", "high_school_mathematics",
             "high_school_physics", "high_school_statistics", "machine_learning")


@dataclass(frozen=True)
class BenchmarkSpec:
    checker: str
    instruction: str
    required: tuple[str, ...]  # canonical fields every row must map


# What the code knows about each benchmark; its file's field map is in conf/benchmark/<name>.yaml.
SPECS: dict[str, BenchmarkSpec] = {
    "synthetic": BenchmarkSpec("exact", MATH_INSTRUCTION, ()),
    "aime24": BenchmarkSpec("integer", MATH_INSTRUCTION, ("problem", "answer")),
    "math500": BenchmarkSpec("math", MATH_INSTRUCTION, ("problem", "answer")),
    "gsm8k": BenchmarkSpec("math", MATH_INSTRUCTION, ("problem", "answer")),
    "gpqa_diamond": BenchmarkSpec("choice", CHOICE_INSTRUCTION,
                                  ("problem", "correct", "incorrect_1", "incorrect_2", "incorrect_3")),
    "mmlu_stem": BenchmarkSpec("choice", CHOICE_INSTRUCTION, ("problem", "choices", "answer", "subject")),
    "logiqa": BenchmarkSpec("choice", CHOICE_INSTRUCTION, ("problem", "choices", "answer")),
    "bbh": BenchmarkSpec("bbh", BBH_INSTRUCTION, ("problem", "answer")),
    "humaneval": BenchmarkSpec("code", CODE_INSTRUCTION, ("id", "problem", "tests", "entry_point")),
}
# The organism's generalization benchmarks (Table 4 on the embedded default): generated like
# `synthetic` (source=synthetic), each a kind of problem the Table 4 pool holds out.
ORGANISM_GENERALIZATION = ("organism_seen", "organism_longer", "organism_new_domain", "organism_mixed")
SPECS.update({name: SPECS["synthetic"] for name in ORGANISM_GENERALIZATION})


def spec_of(name: str) -> BenchmarkSpec:
    if name not in SPECS:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {sorted(SPECS)}")
    return SPECS[name]


def checker_of(bcfg) -> str:
    return spec_of(bcfg.name).checker if bcfg.checker == "auto" else bcfg.checker


def gsm8k_gold(answer: str) -> str:
    """The number after "####" of a GSM8K solution, without thousands separators."""
    if "####" not in answer:
        raise ValueError("a GSM8K answer ends with '#### <number>'")
    return answer.rsplit("####", 1)[1].strip().replace(",", "").rstrip(".")


# -- reading files -------------------------------------------------------------------------
def _open_text(path: Path):
    """A text file, a byte-order mark (common in exports) read as nothing."""
    return gzip.open(path, "rt", encoding="utf-8-sig") if path.suffix == ".gz" else path.open(encoding="utf-8-sig")


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(``file:line`` or ``file:row``, record) for every row of a benchmark file or folder."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl", ".gz", ".csv", ".parquet"))
        if not files:
            raise DataError(f"{path}: the folder holds no .json/.jsonl/.csv/.parquet benchmark file")
        for f in files:
            for where, row in _rows(f):
                yield where, {"__subset__": f.name.split(".")[0], **row}
        return
    suffixes = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffixes in (".jsonl", ".jsonl.gz"):
        with _open_text(path) as f:
            for lineno, row in jsonl_objects(path, f):
                yield f"{path}:{lineno}", row
    elif suffixes == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        rows = data.get("examples") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON list of rows or an object with an 'examples' list")
        for i, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise DataError(f"{path}: row {i}: expected a JSON object, got {type(row).__name__}")
            yield f"{path}: row {i}", row
    elif suffixes == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                if None in row:  # more cells than header columns
                    raise DataError(f"{path}:{reader.line_num}: {len(row[None])} cell(s) beyond the header's columns")
                yield f"{path}:{reader.line_num}", row
    elif suffixes == ".parquet":
        import pandas as pd
        for i, row in enumerate(pd.read_parquet(path).to_dict(orient="records"), 1):
            yield f"{path}: row {i}", {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()}
    else:
        raise DataError(f"{path}: unsupported file type {suffixes!r}; expected .jsonl, .jsonl.gz, .json, .csv, "
                        ".parquet or a folder of them")


def resolve_path(bcfg) -> Path:
    """The benchmark's local file, or an error that says where to put it and what to set."""
    if not bcfg.path:
        raise DataError(f"benchmark {bcfg.name}: no file given; set benchmark.path=<file> (or "
                        "REASONBRIDGE_BENCHMARKS=<folder>), or benchmark.source=hub with network access")
    path = Path(bcfg.path).expanduser()
    if not path.exists():
        raise DataError(f"benchmark {bcfg.name}: {path.resolve()} does not exist; put the dataset's file there, "
                        "point benchmark.path at it (or REASONBRIDGE_BENCHMARKS at its folder), "
                        "or use benchmark.source=hub with network access")
    return path


def _hub_rows(bcfg) -> Iterator[tuple[str, dict]]:
    import datasets
    configs = list(bcfg.subsets) if bcfg.name == "bbh" and bcfg.subsets else [bcfg.hub_config]
    for config in configs:
        try:
            ds = datasets.load_dataset(bcfg.hub, config, split=bcfg.split)
        except Exception as e:  # offline, unknown id, gated dataset: say which and how to go local
            raise DataError(f"benchmark {bcfg.name}: cannot load {bcfg.hub!r} ({config}) from the hub: {e}; "
                            "without network use benchmark.source=file and benchmark.path=<local file>") from e
        for i, row in enumerate(ds, 1):
            yield f"{bcfg.hub}[{config}]:{i}", ({"__subset__": config, **row} if config else row)


def _field(row: dict, fields: dict, canon: str, where: str, required: bool):
    src = fields.get(canon)
    if src is None:
        if required:
            raise DataError(f"{where}: benchmark.fields.{canon} is not mapped to a column")
        return None
    if src not in row or (required and row[src] in (None, "")):
        if required:
            raise DataError(f"{where}: missing field {src!r} (benchmark.fields.{canon})")
        return None
    return row[src]


def _choices(value, where: str, src: str) -> list[str]:
    if isinstance(value, str):  # some exports keep lists as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: field {src!r} must be a list of options") from None
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise DataError(f"{where}: field {src!r} must be a list of at least two options")
    return [str(v).strip() for v in value]


def _index(value, n: int, where: str, src: str) -> int:
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS[:n]:
        return LETTERS.index(value.strip().upper())
    try:
        i = int(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: field {src!r} must be the correct option's index or letter, got {value!r}") from None
    if not 0 <= i < n:
        raise DataError(f"{where}: field {src!r} = {i} is outside the {n} options")
    return i


def format_choices(question: str, options: list[str], correct: int, *, shuffle: bool, seed: int,
                   problem_id: str) -> tuple[str, str, list[str]]:
    """(text with lettered options, gold letter, options in shown order); the shuffle depends only
    on the seed and the problem id, so every run and model sees the same order."""
    order = list(range(len(options)))
    if shuffle:
        random.Random(f"{seed}:{problem_id}").shuffle(order)
    shown = [options[i] for i in order]
    text = question.strip() + "\n\n" + "\n".join(f"{LETTERS[k]}) {opt}" for k, opt in enumerate(shown))
    return text, LETTERS[order.index(correct)], shown


def _problem(bcfg, row: dict, where: str, index: int, seed: int) -> dict:
    name = bcfg.name
    spec = spec_of(name)
    fields = dict(bcfg.fields)
    get: Callable = lambda canon, required=False: _field(row, fields, canon, where, required)  # noqa: E731
    for canon in spec.required:
        get(canon, True)
    raw_id = get("id")
    subset = row.get("__subset__")
    pid = f"{name}-{subset + '-' if subset else ''}{raw_id if raw_id not in (None, '') else index}"
    meta: dict = {"row": where}
    if subset:
        meta["subset"] = subset
    domain = None
    problem, answer = str(get("problem", True)).strip(), get("answer")
    if name == "math500":
        subject = get("subject")
        domain = SUBJECT_TO_MSC.get(str(subject).lower()) if subject else None
        meta.update(subject=subject, level=get("level"))
    elif name == "aime24":
        answer = str(answer).strip()
        try:
            int(answer)
        except ValueError:
            raise DataError(f"{where}: AIME answer {answer!r} is not an integer") from None
    elif name == "gsm8k":
        try:
            answer = gsm8k_gold(str(answer))
        except ValueError as e:
            raise DataError(f"{where}: field {fields['answer']!r}: {e}") from None
    elif name == "gpqa_diamond":
        options = [str(get(k, True)).strip() for k in ("correct", "incorrect_1", "incorrect_2", "incorrect_3")]
        problem, answer, shown = format_choices(problem, options, 0, shuffle=bcfg.shuffle_choices, seed=seed,
                                                problem_id=pid)
        meta.update(choices=shown, subject=get("subject"))
    elif name in ("mmlu_stem", "logiqa"):
        src = fields["choices"]
        options = _choices(get("choices", True), where, src)
        correct = _index(answer, len(options), where, fields["answer"])
        if name == "logiqa" and get("context"):
            problem = f"{str(get('context')).strip()}\n\n{problem}"
        problem, answer, shown = format_choices(problem, options, correct, shuffle=bcfg.shuffle_choices, seed=seed,
                                                problem_id=pid)
        meta.update(choices=shown, subject=get("subject") or subset)
    elif name == "humaneval":
        meta.update(tests=str(get("tests", True)), entry_point=str(get("entry_point", True)))
        answer = meta["entry_point"]
    return {"id": pid, "problem": problem, "answer": str(answer).strip(), "domain": domain,
            "domain_name": None, "difficulty": None, "source": name, "meta": meta}


def _wanted_subset(bcfg, row: dict, fields: dict) -> bool:
    subsets = list(bcfg.subsets) if bcfg.subsets else (MMLU_STEM if bcfg.name == "mmlu_stem" else None)
    if subsets is None:
        return True
    subset = row.get(fields.get("subject") or "", None) if bcfg.name == "mmlu_stem" else row.get("__subset__")
    return subset in subsets


def load_benchmark(bcfg, *, seed: int) -> list[dict]:
    """The first ``bcfg.size`` problems (all when null) of a file-based or hub benchmark."""
    spec_of(bcfg.name)  # an unknown benchmark fails here, before its file is read
    fields = dict(bcfg.fields)
    rows = _hub_rows(bcfg) if bcfg.source == "hub" else _rows(resolve_path(bcfg))
    problems: list[dict] = []
    for index, (where, row) in enumerate(rows):
        if not _wanted_subset(bcfg, row, fields):
            continue
        problems.append(_problem(bcfg, row, where, index, seed))
        if bcfg.size is not None and len(problems) == bcfg.size:
            break
    if not problems:
        raise DataError(f"benchmark {bcfg.name}: no problems read from {bcfg.path or bcfg.hub}"
                        + (f" for subsets {list(bcfg.subsets)}" if bcfg.subsets else ""))
    seen: set[str] = set()
    for p in problems:
        if p["id"] in seen:
            raise DataError(f"{p['meta']['row']}: duplicate problem id {p['id']!r}")
        seen.add(p["id"])
    return problems
