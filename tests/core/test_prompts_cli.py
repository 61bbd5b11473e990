"""`tollgate prompts list|show|render|diff` through the real CLI entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from core.prompts import load_prompt

REPO = Path(__file__).resolve().parents[2]

ALPHA = (
    "---\nmodel: local/a\ntags: [one, two]\n---\n[SYSTEM]\nYou are alpha.\n[INSTRUCTION]\nSay {{ word }}.\n"
)
LONGER = """\
---
description: A prompt with a much longer name.
label: v2
output_schema:
  type: object
  properties: {answer: {type: string}}
  required: [answer]
  additionalProperties: false
variants:
  fr: {variables: {language: French}}
---
[SYSTEM]
Answer in {{ language | default("English") }}.
[INSTRUCTION]
{{ question }}
[FORMAT]
JSON only:
{{ output_schema }}
"""


@pytest.fixture
def root(tmp_path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    (directory / "alpha.prompt").write_text(ALPHA, encoding="utf-8")
    (directory / "a_longer_name.prompt").write_text(LONGER, encoding="utf-8")
    return directory


def run_cli(capsys, root: Path, *args: str) -> tuple[int, str, str]:
    code = main(["prompts", "--root", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_prints_an_aligned_table(capsys, root):
    code, out, err = run_cli(capsys, root, "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "MODEL", "TAGS"]
    longer, alpha = load_prompt(root / "a_longer_name.prompt"), load_prompt(root / "alpha.prompt")
    assert lines[1].split() == ["a_longer_name", longer.version, "-", "-"]
    assert lines[2].split(None, 3) == ["alpha", alpha.version, "local/a", "one, two"]
    # Columns line up: every row starts its version at the same offset.
    assert {line.index(version) for line, version in zip(lines[1:], [longer.version, alpha.version])} == {
        lines[0].index("VERSION")
    }


def test_show_prints_header_and_sections(capsys, root):
    code, out, _ = run_cli(capsys, root, "show", "a_longer_name")
    prompt = load_prompt(root / "a_longer_name.prompt")
    assert code == 0
    assert f"version: {prompt.version}" in out
    assert "label: v2" in out and "description: A prompt with a much longer name." in out
    assert "variants:\n- fr" in out
    assert '\n[SYSTEM]\nAnswer in {{ language | default("English") }}.\n' in out
    assert out.index("[SYSTEM]") < out.index("[INSTRUCTION]") < out.index("[FORMAT]")


def test_render_prints_messages_as_json(capsys, root, tmp_path):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({"question": "from file", "extra": 1}))
    code, out, _ = run_cli(
        capsys,
        root,
        "render",
        "a_longer_name",
        "--vars-file",
        str(vars_file),
        "--var",
        "question=Why?",
        "--variant",
        "fr",
    )
    assert code == 0
    document = json.loads(out)
    assert document["variant"] == "fr"
    assert document["version"] == load_prompt(root / "a_longer_name.prompt").version
    assert document["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert document["messages"][1]["content"].startswith("Why?\n\nJSON only:\n{")
    assert document["response_format"]["json_schema"]["name"] == "a_longer_name"


def test_render_with_a_missing_variable_is_one_line_and_exit_2(capsys, root):
    code, out, err = run_cli(capsys, root, "render", "alpha", "--var", "other=1")
    assert code == 2 and out == ""
    assert err == "tollgate prompts: error: prompt alpha: variable 'word' is not defined (given: other)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "alpah"), "unknown prompt 'alpah' in .* \\(did you mean: alpha\\?\\)"),
        (("render", "alpha", "--var", "novalue"), "--var 'novalue': expected NAME=VALUE"),
        (("render", "alpha", "--vars-file", "/nonexistent/v.json"), "cannot read variables file"),
        (("diff", "alpha", "--against", "/nonexistent/x.prompt"), "cannot read"),
    ],
)
def test_errors_are_one_line(capsys, root, args, message):
    code, _, err = run_cli(capsys, root, *args)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("tollgate prompts: error: ")
    assert re.search(message, err), err


def test_diff_against_another_file(capsys, root, tmp_path):
    other = tmp_path / "old.prompt"
    other.write_text(ALPHA.replace("You are alpha.", "You were alpha."), encoding="utf-8")
    code, out, _ = run_cli(capsys, root, "diff", "alpha", "--against", str(other))
    new_version = load_prompt(root / "alpha.prompt").version
    old_version = load_prompt(other).version
    assert code == 0
    assert out.splitlines()[0] == f"{other} version {old_version}"
    assert f"alpha.prompt version {new_version}" in out
    assert "-You were alpha.\n+You are alpha.\n" in out
    assert f"+++ {root / 'alpha.prompt'} ({new_version})" in out


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_diff_against_git_head(capsys, tmp_path):
    repo = tmp_path / "repo"
    prompts = repo / "prompts"
    prompts.mkdir(parents=True)
    path = prompts / "alpha.prompt"
    path.write_text(ALPHA, encoding="utf-8")
    git(repo, "init", "-q")
    git(repo, "add", "prompts/alpha.prompt")
    git(repo, "commit", "-q", "-m", "first")
    head_version = load_prompt(path).version

    code, out, _ = run_cli(capsys, prompts, "diff", "alpha")
    assert code == 0 and out.endswith("no differences\n")

    path.write_text(ALPHA.replace("Say {{ word }}.", "Say {{ word }} twice."), encoding="utf-8")
    code, out, _ = run_cli(capsys, prompts, "diff", "alpha", "--against", "git:HEAD")
    new_version = load_prompt(path).version
    assert code == 0 and new_version != head_version
    assert out.splitlines()[:2] == [
        f"HEAD:{path} version {head_version}",
        f"{path} version {new_version}",
    ]
    assert "-Say {{ word }}.\n+Say {{ word }} twice.\n" in out

    (prompts / "beta.prompt").write_text(ALPHA, encoding="utf-8")
    code, _, err = run_cli(capsys, prompts, "diff", "beta")
    assert code == 2 and "beta.prompt: not in git HEAD (a new file?)" in err

    code, _, err = run_cli(capsys, prompts, "diff", "alpha", "--against", "git:no-such-branch")
    assert code == 2 and "unknown git revision 'no-such-branch'" in err


def test_diff_outside_a_git_repository(capsys, root):
    code, _, err = run_cli(capsys, root, "diff", "alpha")
    assert code == 2
    assert (
        err
        == f"tollgate prompts: error: {root / 'alpha.prompt'}: not inside a git repository (cannot diff against HEAD)\n"
    )


def test_console_script_lists_the_shipped_prompts():
    script = Path(sys.executable).parent / "tollgate"
    done = subprocess.run(
        [str(script), "prompts", "list"], check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert {"booking_extract", "policy_faq", "support_classify"} <= set(names)
    assert done.stdout.splitlines()[0].split() == ["NAME", "VERSION", "MODEL", "TAGS"]
