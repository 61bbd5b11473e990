"""Calibration figures on a known set, their storage, the agreement gate, and the command line."""

from __future__ import annotations

import orjson
import pytest

from core.cli import main
from harness import scorers
from harness.judges.calibration import (
    calibrate,
    cohen_kappa,
    latest_calibrations,
    spearman,
    store_calibration,
)
from harness.judges.config import metric_from_config
from harness.judges.gate import AgreementCheck
from harness.results import LLMResult
from tests.harness.judges.conftest import output_in

GROUNDED = {"name": "geval", "args": {"name": "grounded", "steps": ["Is the answer right?"],
                                      "params": ["input", "actual_output"]}, "threshold": 0.5}
# Judge score (0..10) per output, and the human label and score of each output.
KNOWN = [
    ("a1", 9, "good", 1.0), ("a2", 8, "good", 0.9), ("a3", 7, "good", 0.8), ("a4", 3, "good", 0.6),
    ("a5", 6, "bad", 0.4), ("a6", 2, "bad", 0.2), ("a7", 1, "bad", 0.1), ("a8", None, "bad", 0.0),
]


def write_set(path):
    lines = [orjson.dumps({"id": name, "inputs": {"input": "q", "output": name},
                           "expected": {"label": label, "score": human}}) for name, _, label, human in KNOWN]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def scripted_scores(request):
    judged = {name: score for name, score, _, _ in KNOWN}[output_in(request)]
    return "unparseable" if judged is None else judged


def test_cohen_kappa_and_spearman_on_textbook_values():
    # 10 items: both say yes 4, both no 3, disagree 3 -> po 0.7, pe 0.5 -> kappa 0.4.
    first = [1, 1, 1, 1, 0, 0, 0, 1, 1, 0]
    second = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa([1, 0, 1], [1, 0, 1]) == pytest.approx(1.0)
    assert cohen_kappa([1, 1], [1, 1]) is None  # chance agreement is total: kappa undefined
    assert spearman([0.1, 0.2, 0.3], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert spearman([0.1, 0.2, 0.3], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert spearman([0.5, 0.5], [0.1, 0.9]) is None


def test_calibration_figures_on_a_known_set(make_runtime, scripted_judge, tmp_path):
    scripted_judge.script = scripted_scores
    runtime = make_runtime()
    result = calibrate(runtime, metric_from_config(GROUNDED), write_set(tmp_path / "set.jsonl"))
    assert (result.n_items, result.n_scored, result.judge_calls) == (8, 7, 8)
    # Scored: judge pass/fail 1,1,1,0 | 1,0,0 against labels 1,1,1,1 | 0,0,0: 5 of 7 agree.
    assert result.accuracy == pytest.approx(5 / 7)
    assert result.kappa == pytest.approx(cohen_kappa([1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 1, 0, 0]))
    assert result.kappa == pytest.approx(0.4166666, abs=1e-6)
    assert result.spearman == pytest.approx(spearman([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1],
                                                     [1.0, 0.9, 0.8, 0.6, 0.4, 0.2, 0.1]))
    assert [item["error"] is not None for item in result.items] == [False] * 7 + [True]


def test_stored_calibration_reaches_the_scores_and_the_agreement_gate(make_runtime, scripted_judge, tmp_path):
    scripted_judge.script = scripted_scores
    runtime = make_runtime()
    metric = metric_from_config(GROUNDED)
    stored = store_calibration(runtime, calibrate(runtime, metric, write_set(tmp_path / "set.jsonl")))
    assert latest_calibrations(runtime)[0]["id"] == stored
    scripted_judge.script = lambda request: 9
    fresh = make_runtime()  # a new run reads the stored calibration
    score = metric.scorer(input="q")(LLMResult("a1", "m", 1.0, None, 1, 1, 0.0))
    assert score.details["judge"]["kappa"] == pytest.approx(0.4166666, abs=1e-6)
    check = AgreementCheck()
    check.observe({"scores": [score.to_dict()]})
    assert check.failures(None) == []
    assert check.failures(0.4) == []
    [failure] = check.failures(0.6)
    assert "kappa 0.42 < required 0.6" in failure and "geval:grounded" in failure
    # An uncalibrated judge (another rubric) fails any required agreement.
    other = scorers.geval(name="other", steps=["x"], input="q")(LLMResult("a1", "m", 1.0, None, 1, 1, 0.0))
    check.observe({"scores": [other.to_dict()]})
    assert any("is not calibrated for geval:other" in line for line in check.failures(0.1))
    # a1 with input "q" was judged by the calibration under the same rubric: only "other" cost a call.
    assert fresh.counts() == {"calls": 1, "cached": 1, "failed": 0}


def test_calibrate_command_prints_and_stores(scripted_judge, tmp_path, capsys):
    scripted_judge.script = scripted_scores
    config = tmp_path / "tollgate.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'db.sqlite'}\njudges:\n  model: judge-a\n"
                      f"  timeout_s: 30\n  metrics:\n    grounded: {orjson.dumps(GROUNDED).decode()}\n")
    dataset = write_set(tmp_path / "set.jsonl")
    args = ["judge", "calibrate", "--config", str(config), "--url", scripted_judge.url, "--metric", "grounded",
            "--dataset", str(dataset)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "accuracy 0.714" in out and "kappa    0.417" in out and "8 items, 7 scored, 1 unscored" in out
    assert "stored as calibration 1" in out
    assert main(args + ["--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    # Seven verdicts come from the cache; the unparseable one was not cached and is asked again.
    assert data["details"]["judge_calls"] == 1 and data["kappa"] == pytest.approx(0.4166666, abs=1e-6)
    assert main(["judge", "calibrations", "--config", str(config)]) == 0
    assert "geval:grounded" in capsys.readouterr().out
    assert main(["judge", "calibrate", "--config", str(config), "--url", scripted_judge.url, "--metric",
                 "nonsense", "--dataset", str(dataset)]) == 2
    assert "unknown judge metric 'nonsense'" in capsys.readouterr().err
    assert main(["judge", "clear-cache", "--config", str(config)]) == 0
    assert "7 cached verdict(s) removed" in capsys.readouterr().out  # failures are never cached


def test_malformed_calibration_set_is_one_line(make_runtime, tmp_path):
    from harness.errors import HarnessError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "inputs": {"output": "a"}, "expected": "maybe"}\n')
    with pytest.raises(HarnessError, match="expected must be 'good'/'bad'"):
        calibrate(make_runtime(), metric_from_config(GROUNDED), bad)
