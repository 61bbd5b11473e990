"""From traffic to tests: logged requests with reviewers' labels become a dataset the suites can load."""

from __future__ import annotations

import pytest

from core.cli import main
from core.reviews import add_review_item, label_review_item
from harness.datasets import load_dataset
from harness.errors import HarnessError
from harness.judges.regression import TrafficFilter, dataset_from_traffic
from tests.harness.judges.conftest import add_traffic


def label(engine, traffic_id: str, verdict: str) -> None:
    item = add_review_item(engine, source="judge", reason="check", traffic_id=traffic_id)
    label_review_item(engine, item, verdict, reviewer="ana")


def test_dataset_from_traffic_with_reviewers_labels(judge_engine, tmp_path):
    ids = add_traffic(judge_engine, 4)
    add_traffic(judge_engine, 2, start=4, stream=True)
    add_traffic(judge_engine, 2, start=10, feature="judge")  # never turned into cases
    label(judge_engine, ids[0], "bad")
    label(judge_engine, ids[0], "good")  # relabelled: the newest label counts
    label(judge_engine, ids[1], "bad")
    out = tmp_path / "datasets" / "from_traffic.jsonl"
    written = dataset_from_traffic(judge_engine, out, filters=TrafficFilter())
    assert written == 6
    dataset = load_dataset(out)
    cases = {case.id: case for case in dataset.cases}
    first = cases[f"t-{ids[0]}"]
    assert first.expected == {"output": "answer 0", "label": "good"}
    assert first.inputs["input"] == "question 0"
    assert first.inputs["request"]["messages"][1] == {"role": "user", "content": "question 0"}
    assert "label:good" in first.tags and "prompt:support" in first.tags
    assert cases[f"t-{ids[1]}"].expected["label"] == "bad"
    streamed = cases[f"t-{4:032x}"]
    assert streamed.expected == {"output": "answer 4", "label": None} and "unreviewed" in streamed.tags


@pytest.mark.parametrize(("filters", "expected"), [
    (["label=good"], 1), (["label=reviewed"], 2), (["label=unreviewed"], 2), (["model=other"], 0),
    (["prompt=support", "label=bad"], 1),
])
def test_filters(judge_engine, tmp_path, filters, expected):
    ids = add_traffic(judge_engine, 4)
    label(judge_engine, ids[0], "good")
    label(judge_engine, ids[1], "bad")
    out = tmp_path / "out.jsonl"
    assert dataset_from_traffic(judge_engine, out, filters=TrafficFilter.parse(filters)) == expected
    assert len(out.read_text().splitlines()) == expected


def test_bad_filters_are_one_line():
    with pytest.raises(HarnessError, match="unknown filter 'colour'"):
        TrafficFilter.parse(["colour=red"])
    with pytest.raises(HarnessError, match="label filter must be one of"):
        TrafficFilter.parse(["label=maybe"])


def test_datasets_command(judge_engine, sqlite_url, tmp_path, capsys):
    add_traffic(judge_engine, 3)
    config = tmp_path / "tollgate.yaml"
    config.write_text(f"database_url: {sqlite_url}\n")
    out = tmp_path / "cases.jsonl"
    assert main(["datasets", "from-traffic", "--config", str(config), "--since", "1h", "--out", str(out)]) == 0
    assert "3 case(s) written" in capsys.readouterr().out
    assert len(load_dataset(out)) == 3
    assert main(["datasets", "from-traffic", "--config", str(config), "--since", "soon", "--out", str(out)]) == 2
    assert "duration 'soon'" in capsys.readouterr().err
