"""Cache hit rates on a replayed traffic sample: exact-only beside exact + semantic, in one run.

    python benchmarks/cache_replay.py                  # 1,500 requests, seed 7
    python benchmarks/cache_replay.py --requests 300   # smoke run

The sample is built from the suites' datasets (`datasets/policy_faq.jsonl`: a policy text as the system
message and a question; `datasets/support_messages.jsonl`: a customer message under a classification
prompt), 40 distinct requests in all, replayed the way production traffic repeats itself:
- each request picks a base case from a Zipf-like distribution (a few questions are asked very often);
- 55% send the dataset's text as is, 45% a rewording of it (a polite prefix, a lower-cased and unpunctuated
  copy, "could you tell me ..."), so exact keys differ but the meaning does not;
- 15% ask with temperature 0.7 (not deterministic: never served by the semantic cache);
- half-way through, the prompt version changes (`x-tollgate-prompt: faq@v1` -> `@v2`), which must
  invalidate every entry of the old version.

Each configuration gets a fresh sidecar (memory store, traffic log off) in front of the fake upstream, which
echoes the question, so the benchmark can tell whether a semantic hit served an answer given to the same
base case (correct) or to another one (a false hit). Prints hit rates, upstream calls saved, false semantic
hits, and the median time of hits and misses as the client sees them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from core.settings import Settings
from sidecar.fake_upstream import FakeBehaviour, FakeUpstreamThread, start_fake_upstream_thread
from sidecar.testing import ThreadedSidecar

ROOT = Path(__file__).resolve().parent.parent
MODEL = "replay-model"
CLASSIFY = "Classify the customer message as booking_change, refund, complaint or question. Answer with the label."


@dataclass(frozen=True)
class Case:
    """A distinct request of the sample: its system message and the user text."""

    name: str
    system: str
    text: str


@dataclass(frozen=True)
class Request:
    case: Case
    text: str
    temperature: float
    version: str


def load_cases() -> list[Case]:
    cases = []
    for line in (ROOT / "datasets" / "policy_faq.jsonl").read_text().splitlines():
        item = orjson.loads(line)
        cases.append(Case(item["id"], item["inputs"]["context"], item["inputs"]["question"]))
    for line in (ROOT / "datasets" / "support_messages.jsonl").read_text().splitlines():
        item = orjson.loads(line)
        cases.append(Case(item["id"], CLASSIFY, item["inputs"]["message"]))
    return cases


def reword(text: str, rng: random.Random) -> str:
    """A rewording that keeps the meaning (what users type differently from one another)."""
    bare = text.rstrip("?.!")
    lowered = bare[0].lower() + bare[1:]
    choices = [
        f"Hi, {lowered}?" if text.endswith("?") else f"Hi, {lowered}.",
        f"Could you tell me: {lowered}?" if text.endswith("?") else f"Hello. {text}",
        bare.lower().replace(",", ""),
        f"Quick question - {text}",
        f"{text} Thanks!",
    ]
    return rng.choice(choices)


def build_sample(cases: list[Case], count: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(cases))]
    order = cases[:]
    rng.shuffle(order)
    sample = []
    for index in range(count):
        case = rng.choices(order, weights)[0]
        text = case.text if rng.random() < 0.55 else reword(case.text, rng)
        temperature = 0.7 if rng.random() < 0.15 else 0.0
        version = "v1" if index < count // 2 else "v2"
        sample.append(Request(case, text, temperature, version))
    return sample


@dataclass
class Outcome:
    results: dict[str, int]
    upstream_calls: int
    false_semantic: int
    hit_ms: list[float]
    miss_ms: list[float]
    semantic_ms: list[float]


def replay(sample: list[Request], semantic: bool, threshold: float, data_dir: Path) -> Outcome:
    with start_fake_upstream_thread(FakeBehaviour(models=(MODEL,), output_tokens=24)) as fake:
        config: dict[str, Any] = {
            "data_dir": data_dir,
            "models": {MODEL: {"deployments": [{"base_url": fake.url}]}},
            "embedded": {"enabled": "never"},
            "traffic": {"enabled": False},
            "sidecar": {"port": 0},
            "cache": {"enabled": True, "semantic": {"enabled": semantic, "threshold": threshold}},
        }
        settings = Settings(**config)
        sidecar = ThreadedSidecar(settings).start()
        try:
            return _send_all(sidecar.url, sample, fake)
        finally:
            sidecar.stop()


def _send_all(url: str, sample: list[Request], fake: FakeUpstreamThread) -> Outcome:
    results = {"hit": 0, "semantic": 0, "miss": 0}
    owner: dict[bytes, str] = {}  # answer body -> the base case it was first given to
    false_semantic = 0
    timings: dict[str, list[float]] = {"hit": [], "semantic": [], "miss": []}
    with httpx.Client(timeout=30) as client:
        client.post(url + "/chat/completions", json=_body(sample[0]), headers={"x-tollgate-cache": "bypass"})
        time.sleep(1.0)  # the embedding model loads in the background at start-up
        before = fake.stats()["requests_total"]
        for request in sample:
            started = time.perf_counter()
            response = client.post(url + "/chat/completions", json=_body(request),
                                   headers={"x-tollgate-prompt": f"faq@{request.version}"})
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            result = response.headers["x-tollgate-cache"]
            results[result] += 1
            timings[result].append(elapsed)
            body = response.content
            if result == "miss":
                owner.setdefault(body, request.case.name)
            elif result == "semantic" and owner.get(body) != request.case.name:
                false_semantic += 1
        calls = fake.stats()["requests_total"] - before
    return Outcome(results, calls, false_semantic, timings["hit"], timings["miss"], timings["semantic"])


def _body(request: Request) -> dict[str, Any]:
    return {"model": MODEL, "temperature": request.temperature, "max_tokens": 64, "messages": [
        {"role": "system", "content": request.case.system}, {"role": "user", "content": request.text}]}


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f}" if values else "      -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threshold", type=float, default=0.93)
    args = parser.parse_args()
    cases = load_cases()
    sample = build_sample(cases, args.requests, args.seed)
    distinct = len({(r.case.system, r.text, r.temperature, r.version) for r in sample})
    rewordings = sum(1 for r in sample if r.text != r.case.text)
    print(f"sample: {len(sample)} requests over {len(cases)} base cases, {distinct} distinct requests, "
          f"{rewordings} reworded, {sum(1 for r in sample if r.temperature)} at temperature 0.7, "
          f"prompt version v1 -> v2 at request {len(sample) // 2}")
    print(f"{'cache':<18} {'exact':>7} {'semantic':>9} {'total':>7} {'upstream':>9} {'false sem':>10} "
          f"{'hit ms':>7} {'sem ms':>7} {'miss ms':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for label, semantic in (("exact only", False), (f"exact+semantic@{args.threshold:g}", True)):
            outcome = replay(sample, semantic, args.threshold, Path(folder) / label.replace(" ", "_"))
            n = len(sample)
            exact, sem = outcome.results["hit"] / n, outcome.results["semantic"] / n
            print(f"{label:<18} {exact:>7.1%} {sem:>9.1%} {exact + sem:>7.1%} {outcome.upstream_calls:>9} "
                  f"{outcome.false_semantic:>10} {_ms(outcome.hit_ms)} {_ms(outcome.semantic_ms)} "
                  f"{_ms(outcome.miss_ms)}")
    print("upstream = calls that reached the fake upstream; false sem = semantic hits that served another "
          "base case's answer; times are client-side medians")


if __name__ == "__main__":
    main()
