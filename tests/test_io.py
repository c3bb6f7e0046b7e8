import pytest

from reasonbridge.io import DataError, read_jsonl, write_jsonl


def test_roundtrip(tmp_path):
    rows = [{"id": "a", "x": 1}, {"id": "b", "x": "ü"}]
    write_jsonl(tmp_path / "f.jsonl", rows)
    assert read_jsonl(tmp_path / "f.jsonl", required=["id"]) == rows


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "b",\n')
    with pytest.raises(DataError, match=rf"{path}:3: malformed JSON"):
        read_jsonl(path)


def test_missing_field_names_it(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"id": "a", "problem": "p"}\n{"id": "b"}\n')
    with pytest.raises(DataError, match=rf"{path}:2: missing field 'problem'"):
        read_jsonl(path, required=["id", "problem"])
