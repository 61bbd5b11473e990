"""Dataset loading: the three formats, default ids, tags, the errors with file and line, and the cache."""

from __future__ import annotations

import hashlib
import os
import re

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.datasets import Case, DatasetError, clear_cache, filter_cases, load_dataset
from harness.errors import HarnessError


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def write_jsonl(path, rows):
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def test_jsonl_with_inputs_expected_tags_and_ids(tmp_path):
    path = write_jsonl(
        tmp_path / "cases.jsonl",
        [
            {
                "id": "a",
                "inputs": {"text": "hi", "n": 2},
                "expected": {"label": "x"},
                "tags": ["smoke", "fr"],
            },
            {"id": 7, "inputs": {"text": "yo"}, "tags": "slow, en ,"},
        ],
    )
    dataset = load_dataset(path)
    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset.name == "cases" and len(dataset) == 2
    first, second = dataset.cases
    assert first == Case(
        id="a",
        inputs={"text": "hi", "n": 2},
        expected={"label": "x"},
        tags=("smoke", "fr"),
        source=f"{path}:1",
    )
    assert second.id == "7" and second.expected is None and second.tags == ("slow", "en")
    assert second.source == f"{path}:2"


def test_flat_rows_become_inputs_and_default_ids_are_content_hashes(tmp_path):
    row = {"question": "q?", "context": "c", "expected": "a"}
    path = write_jsonl(tmp_path / "flat.jsonl", [row])
    (case,) = load_dataset(path).cases
    assert case.inputs == {"question": "q?", "context": "c"}
    assert case.expected == "a"
    canonical = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
    assert case.id == hashlib.sha256(canonical).hexdigest()[:12]
    # The default id does not depend on key order or on where the row sits in the file.
    reordered = {"expected": "a", "context": "c", "question": "q?"}
    other = write_jsonl(tmp_path / "other.jsonl", [{"question": "first"}, reordered])
    assert load_dataset(other).cases[1].id == case.id


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_bytes(b'\n{"id": "a", "x": 1}\n\n   \n{"id": "b", "x": 2}\n')
    assert [c.source for c in load_dataset(path).cases] == [f"{path}:2", f"{path}:5"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"id": "a"}\n{"id": \n', r":2: invalid JSON \("),
        (b'{"id": "a"}\n[1, 2]\n', r":2: a row must be a JSON object, got list"),
        (b'{"id": "a", "inputs": "text"}\n', r":1: 'inputs' must be an object, got str"),
        (b'{"inputs": {}, "extra": 1}\n', r":1: unexpected key 'extra' beside 'inputs'"),
        (b'{"id": "a", "tags": 5}\n', r":1: 'tags' must be a list of strings"),
        (b'{"id": 1.5}\n', r":1: 'id' must be a string or an integer, got float"),
        (b'{"id": "abc"}\n{"id": "x"}\n{"id": "abc"}\n', r":3: duplicate id 'abc' \(first at line 1\)"),
        (
            b'{"q": 1}\n{"q": 1}\n',
            r":2: duplicate case \(same content, give it an 'id'\) \(first at line 1\)",
        ),
        (b"", r": empty dataset \(no cases\)"),
        (b"\n  \n", r": empty dataset \(no cases\)"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="^" + re.escape(str(tmp_path / "bad.jsonl")) + message) as info:
        load_dataset(path)
    assert isinstance(info.value, HarnessError) and "\n" not in str(info.value)


def test_unsupported_extension_and_missing_file(tmp_path):
    (tmp_path / "cases.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"cases\.txt: unsupported dataset type '\.txt'"):
        load_dataset(tmp_path / "cases.txt")
    with pytest.raises(DatasetError, match=r"none\.jsonl: no such dataset file"):
        load_dataset(tmp_path / "none.jsonl")


def test_csv_flat_columns_strings_and_tags(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text(
        'id,question,nights,expected,tags\nq1,Can I cancel?,3,"{""answer"": ""yes""}","faq, cancel"\n'
        ",Pets?,NA,no,\n",
        encoding="utf-8",
    )
    first, second = load_dataset(path).cases
    assert first == Case(
        id="q1",
        inputs={"question": "Can I cancel?", "nights": "3"},
        expected={"answer": "yes"},
        tags=("faq", "cancel"),
        source=f"{path}:2",
    )
    # Cells stay strings ("NA" is not turned into NaN); an empty id gets the content hash.
    assert second.inputs == {"question": "Pets?", "nights": "NA"} and second.expected == "no"
    assert second.tags == () and len(second.id) == 12 and second.source == f"{path}:3"


def test_csv_inputs_column_holds_json(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text('id,inputs\na,"{""text"": ""hi""}"\nb,not json\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"cases\.csv:3: 'inputs' is not valid JSON"):
        load_dataset(path)
    path.write_text('id,inputs\na,"{""text"": ""hi""}"\n', encoding="utf-8")
    assert load_dataset(path).cases[0].inputs == {"text": "hi"}


def test_csv_duplicate_and_bad_and_empty(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,x\na,1\nb,2\na,3\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"dup\.csv:4: duplicate id 'a' \(first at line 2\)"):
        load_dataset(path)
    broken = tmp_path / "broken.csv"
    broken.write_text("id,x\na,1\nb,2,3,4\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"broken\.csv: invalid CSV \("):
        load_dataset(broken)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"empty\.csv: empty dataset"):
        load_dataset(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,x\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"header\.csv: empty dataset"):
        load_dataset(header_only)


def test_parquet_keeps_types_nested_inputs_and_list_tags(tmp_path):
    path = tmp_path / "cases.parquet"
    table = pa.table(
        {
            "id": ["a", None],
            "inputs": [{"city": "Oslo", "nights": 2}, {"city": "Rome", "nights": None}],
            "expected": [3, None],
            "tags": [["x", "y"], None],
        }
    )
    pq.write_table(table, path)
    first, second = load_dataset(path).cases
    assert first == Case(
        id="a", inputs={"city": "Oslo", "nights": 2}, expected=3, tags=("x", "y"), source=f"{path}:1"
    )
    assert isinstance(first.expected, int)
    assert second.inputs == {"city": "Rome", "nights": None} and second.expected is None
    assert second.tags == () and len(second.id) == 12


def test_parquet_duplicate_reports_rows_and_bad_file(tmp_path):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"id": ["a", "a"], "q": ["1", "2"]}), path)
    with pytest.raises(DatasetError, match=r"dup\.parquet:2: duplicate id 'a' \(first at row 1\)"):
        load_dataset(path)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match=r"bad\.parquet: invalid Parquet file"):
        load_dataset(bad)


def test_cache_reuses_until_the_file_changes(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "x": 1}])
    first = load_dataset(path)
    assert load_dataset(path) is first
    write_jsonl(path, [{"id": "a", "x": 1}, {"id": "b", "x": 2}])
    stat = path.stat()
    # Force a distinct mtime even on filesystems with coarse timestamps.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = load_dataset(path)
    assert second is not first and [c.id for c in second.cases] == ["a", "b"]
    assert second.sha256 != first.sha256


def test_filter_cases_by_tags():
    cases = [
        Case(id="1", inputs={}, expected=None, tags=("smoke", "fr"), source="x:1"),
        Case(id="2", inputs={}, expected=None, tags=("slow",), source="x:2"),
        Case(id="3", inputs={}, expected=None, tags=(), source="x:3"),
    ]
    assert [c.id for c in filter_cases(cases)] == ["1", "2", "3"]
    assert [c.id for c in filter_cases(cases, tags=["smoke", "slow"])] == ["1", "2"]
    assert [c.id for c in filter_cases(cases, tags=["fr"])] == ["1"]
    assert [c.id for c in filter_cases(cases, exclude_tags=["slow"])] == ["1", "3"]
    assert filter_cases(cases, tags=[]) == []


def test_to_frame(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "inputs": {"x": 1}, "expected": 2, "tags": ["t"]}])
    frame = load_dataset(path).to_frame()
    assert list(frame.columns) == ["id", "inputs", "expected", "tags", "source"]
    assert frame.iloc[0]["inputs"] == {"x": 1} and frame.iloc[0]["tags"] == ["t"]
