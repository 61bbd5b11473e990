"""What a benchmark sends: streaming chat request bodies from a fixed prompt or a dataset file.

Bodies are serialised once up front; during a run request `i` sends body `i % len(bodies)`, so a dataset
is replayed in file order and cycled when the run needs more requests than it has rows.

A dataset is a `.txt` file (one prompt per non-empty line), a `.jsonl` file of objects, or a `.csv` or
`.parquet` file read by `harness.datasets`. Rows carry `messages` (a chat message list) or one of `prompt`,
`text`, `input`, `question` (directly or under `inputs`), and optionally `max_tokens` (that row's output
length). Unlike an evaluation dataset, a load-test file may repeat a row: JSONL is read here, without the
duplicate-case check of `harness.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.bench.errors import BenchError
from harness.datasets import load_dataset

DEFAULT_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
_PROMPT_KEYS = ("prompt", "text", "input", "question")


@dataclass(frozen=True, slots=True)
class Workload:
    """The request bodies of a run and a description of where they came from (saved with the results)."""

    model: str
    bodies: tuple[bytes, ...]
    source: str
    max_tokens: int | None

    def body(self, index: int) -> bytes:
        return self.bodies[index % len(self.bodies)]

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "source": self.source, "max_tokens": self.max_tokens,
                "distinct_requests": len(self.bodies)}


def build_workload(
    model: str,
    *,
    prompt: str | None = None,
    dataset: str | Path | None = None,
    max_tokens: int | None = None,
    params: dict[str, Any] | None = None,
) -> Workload:
    """A workload from a fixed prompt (the default prompt when neither is given) or a dataset file.

    `params` are extra body fields sent with every request (e.g. `temperature`, `ignore_eos`).
    """
    if not model:
        raise BenchError("a model name is required (--model)")
    if prompt is not None and dataset is not None:
        raise BenchError("give either a prompt or a dataset, not both")
    if max_tokens is not None and max_tokens < 1:
        raise BenchError(f"max tokens must be at least 1, got {max_tokens}")
    extra = dict(params or {})
    if dataset is not None:
        rows = read_prompts(Path(dataset))
        source = f"dataset:{dataset}"
    else:
        text = DEFAULT_PROMPT if prompt is None else prompt
        if not text.strip():
            raise BenchError("the prompt is empty")
        rows = [([{"role": "user", "content": text}], None)]
        source = "prompt" if prompt is not None else "default prompt"
    bodies = tuple(
        _body(model, messages, row_max if row_max is not None else max_tokens, extra) for messages, row_max in rows
    )
    return Workload(model=model, bodies=bodies, source=source, max_tokens=max_tokens)


def read_prompts(path: Path) -> list[tuple[list[dict[str, Any]], int | None]]:
    """(messages, max_tokens or None) for each row of a dataset file."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = [line for line in _read_text(path).splitlines() if line.strip()]
        if not lines:
            raise BenchError(f"{path}: no prompts (the file has no non-empty line)")
        return [([{"role": "user", "content": line}], None) for line in lines]
    if suffix == ".jsonl":
        return [_row(inputs, where) for where, inputs in _jsonl_objects(path)]
    return [_row(case.inputs, case.source) for case in load_dataset(path)]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BenchError(f"{path}: cannot read prompts ({exc.strerror})") from exc


def _jsonl_objects(path: Path) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BenchError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise BenchError(f"{where}: each line must be a JSON object")
        inputs = row.get("inputs")
        rows.append((where, inputs if isinstance(inputs, dict) else row))
    if not rows:
        raise BenchError(f"{path}: no prompts (the file has no non-empty line)")
    return rows


def _row(inputs: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], int | None]:
    max_tokens = inputs.get("max_tokens")
    if max_tokens == "":  # an empty CSV cell: the run's default
        max_tokens = None
    if max_tokens is not None:
        try:
            max_tokens = int(max_tokens)
        except (TypeError, ValueError):
            raise BenchError(f"{where}: max_tokens must be an integer, got {max_tokens!r}") from None
    messages = inputs.get("messages")
    if isinstance(messages, list) and messages:
        return messages, max_tokens
    for key in _PROMPT_KEYS:
        value = inputs.get(key)
        if isinstance(value, str) and value.strip():
            return [{"role": "user", "content": value}], max_tokens
    raise BenchError(f"{where}: no prompt (give 'messages' or one of {', '.join(_PROMPT_KEYS)})")


def _body(model: str, messages: list[dict[str, Any]], max_tokens: int | None, extra: dict[str, Any]) -> bytes:
    body: dict[str, Any] = {**extra, "model": model, "messages": messages, "stream": True,
                            "stream_options": {"include_usage": True}}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return orjson.dumps(body)
