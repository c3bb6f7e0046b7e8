"""JSONL reading and writing with errors that name the file, line and field."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from reasonbridge.errors import UserError


class DataError(UserError):
    """Bad input data; the message starts with `file:line`."""


def jsonl_objects(path: str | Path, lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of an open JSONL file named `path`."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def iter_jsonl(path: str | Path, required: Iterable[str] = ()) -> Iterator[dict]:
    path = Path(path)
    required = tuple(required)
    with path.open(encoding="utf-8-sig") as f:  # -sig: a byte-order mark (a common export) is read, not refused
        for lineno, row in jsonl_objects(path, f):
            for name in required:
                if name not in row:
                    raise DataError(f"{path}:{lineno}: missing field {name!r}")
            yield row


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> list[dict]:
    return list(iter_jsonl(path, required))


def read_appended(path: str | Path | None) -> list[dict]:
    """The records of an append-only progress log written before a kill; a torn line is dropped."""
    if path is None or not Path(path).exists():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
