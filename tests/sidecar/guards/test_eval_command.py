"""`tollgate guard eval`: figures per guard on the shipped datasets and on a small labelled file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import TollgateError
from sidecar.guards.detectors import PiiDetector
from sidecar.guards.evaluation import Case, GuardScore, evaluate, read_dataset

ROOT = Path(__file__).resolve().parents[3]


def test_confusion_counts_and_rates():
    cases = [Case("mail a@example.com", frozenset({"pii"})), Case("no pii here", frozenset()),
             Case("call 555-123-4567", frozenset({"pii"})), Case("version 1.2.3.4", frozenset())]
    [score] = evaluate(cases, {"pii": PiiDetector(["email", "phone", "ip"])})
    assert (score.tp, score.fp, score.fn, score.tn) == (2, 1, 0, 1)
    assert score.precision == pytest.approx(2 / 3) and score.recall == 1.0 and score.false_positive_rate == 0.5
    assert score.false_alarms == ["version 1.2.3.4"]
    assert GuardScore("x").precision is None and GuardScore("x").recall is None


def test_a_malformed_dataset_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "expected": []}\n{"text": 3}\n')
    with pytest.raises(TollgateError, match="bad.jsonl:2"):
        read_dataset(path)


def run_eval(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core.cli", "guard", "eval", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)


def test_the_command_reports_figures_for_the_shipped_pii_set():
    done = run_eval("--dataset", "datasets/guards/pii.jsonl", "--defaults", "--guard", "pii", "--json")
    assert done.returncode == 0, done.stderr
    [pii] = json.loads(done.stdout)["guards"]
    assert pii["cases"] == 77 and pii["recall"] == 1.0
    assert pii["precision"] >= 0.95 and pii["false_positive_rate"] <= 0.05


def test_the_command_uses_the_configured_guards(tmp_path):
    config = tmp_path / "tollgate.yaml"
    config.write_text("guards:\n  policies:\n    - guards:\n        - {type: pii, name: contact, kinds: [email]}\n")
    dataset = tmp_path / "set.jsonl"
    dataset.write_text('{"text": "a@example.com", "expected": ["contact"]}\n{"text": "+44 20 7946 0958", "expected": ["contact"]}\n')
    done = run_eval("--dataset", str(dataset), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "contact" in done.stdout and " 0.500 " in done.stdout  # the phone is not an e-mail: recall 1/2
    missing = run_eval("--dataset", str(dataset), "--config", str(config), "--guard", "nope")
    assert missing.returncode == 2 and "no text guard labelled nope" in missing.stderr
