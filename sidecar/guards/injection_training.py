"""Training and honest evaluation of the injection detector (`tollgate guard train`, `guard eval --loco`).

Training set: JSON lines `{"text": ..., "label": "attack"|"benign", "category": ...}`. Texts are featurised once
(every reading embedded, `injection_features.read`), then every fit below reuses the features, so
cross-validation costs milliseconds per fold. A fit is L2-regularised logistic regression solved by Newton's
method with classes weighted equally: deterministic, no random initialisation. Folds are drawn with a seeded
generator, stratified by category.

The threshold is chosen on out-of-fold scores of the training set (never on an evaluation set): the lowest
threshold at which the benign texts scored out of fold stay within the target false-positive rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from core.errors import TollgateError
from sidecar.guards.injection_features import read
from sidecar.guards.injection_model import Embed, InjectionModel, design

L2 = 0.01
L2_LEXICAL = 1.0
MAX_FPR = 0.02
FOLDS = 5
SEED = 17


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    attack: bool
    category: str


@dataclass(frozen=True)
class Features:
    """Per-reading rows: embedding, the owning text's lexical features, and which text owns each row."""

    embeddings: np.ndarray
    lexical: np.ndarray
    owners: np.ndarray
    labels: np.ndarray  # per text
    categories: np.ndarray  # per text

    def rows(self, texts: np.ndarray) -> np.ndarray:
        """Reading rows of the given text indices."""
        return np.flatnonzero(np.isin(self.owners, texts))


def read_examples(path: Path) -> list[Example]:
    """The labelled texts of a training file; a malformed line is an error naming it."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise TollgateError(f"{path}: cannot read the training set ({exc.strerror})") from exc
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TollgateError(f"{path}:{number}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("label") not in ("attack", "benign"):
            raise TollgateError(f'{path}:{number}: a row is {{"text": "...", "label": "attack"|"benign", "category": "..."}}')
        examples.append(Example(row["text"], row["label"] == "attack", str(row.get("category") or row["label"])))
    if len({e.attack for e in examples}) < 2:
        raise TollgateError(f"{path}: training needs both attack and benign texts")
    return examples


def featurise(examples: Sequence[Example], embed: Embed) -> Features:
    readings = [read(example.text) for example in examples]
    flat = [text for r in readings for text in r.all]
    owners = np.repeat(np.arange(len(readings)), [len(r.all) for r in readings])
    return Features(
        embeddings=np.asarray(embed(flat), dtype=np.float64),
        lexical=np.stack([r.features for r in readings]).astype(np.float64)[owners],
        owners=owners,
        labels=np.array([e.attack for e in examples]),
        categories=np.array([e.category for e in examples]),
    )


def fit(features: Features, texts: np.ndarray, l2: float = L2, threshold: float = 0.5,
        l2_lexical: float = L2_LEXICAL) -> InjectionModel:
    """Logistic regression on the readings of `texts` (indices), classes weighted equally."""
    rows = features.rows(texts)
    lexical = features.lexical[rows]
    mean, scale = lexical.mean(axis=0), lexical.std(axis=0) + 1e-6
    x = np.hstack([design(features.embeddings[rows], lexical, mean, scale), np.ones((len(rows), 1))])
    y = features.labels[features.owners[rows]].astype(np.float64)
    weight = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max(len(y) - y.sum(), 1)) * len(y)
    penalty = np.full(x.shape[1], l2)
    penalty[features.embeddings.shape[1]:] = l2_lexical
    penalty[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        gradient = x.T @ (weight * (p - y)) + penalty * w
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return InjectionModel(w[:-1], float(w[-1]), mean, scale, threshold)


def text_scores(model: InjectionModel, features: Features, texts: np.ndarray) -> np.ndarray:
    """Each text's highest probability over its readings."""
    rows = features.rows(texts)
    probabilities = model.probabilities(features.embeddings[rows], features.lexical[rows])
    position = {int(t): i for i, t in enumerate(texts)}
    scores = np.zeros(len(texts))
    np.maximum.at(scores, [position[int(o)] for o in features.owners[rows]], probabilities)
    return scores


def folds(features: Features, texts: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """`count` folds of `texts`, each category spread over the folds (seeded)."""
    generator = np.random.default_rng(seed)
    buckets: list[list[int]] = [[] for _ in range(count)]
    offset = 0
    for category in sorted(set(features.categories[texts])):
        members = texts[features.categories[texts] == category]
        for i, text in enumerate(generator.permutation(members)):
            buckets[(i + offset) % count].append(int(text))
        offset += len(members)
    return [np.array(sorted(bucket), dtype=int) for bucket in buckets]


def out_of_fold(features: Features, texts: np.ndarray, l2: float, count: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """Out-of-fold scores of `texts` (aligned with them)."""
    scores = np.zeros(len(texts))
    position = {int(t): i for i, t in enumerate(texts)}
    for held in folds(features, texts, count, seed):
        model = fit(features, np.setdiff1d(texts, held), l2)
        scores[[position[int(t)] for t in held]] = text_scores(model, features, held)
    return scores


def choose_threshold(benign_scores: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """The lowest threshold at which at most `max_fpr` of the benign scores reach it."""
    ordered = np.sort(benign_scores)[::-1]
    allowed = int(np.floor(max_fpr * len(ordered)))
    return float(np.nextafter(ordered[allowed], 1.0)) if allowed < len(ordered) else 0.0


def train(features: Features, texts: np.ndarray | None = None, l2: float = L2, max_fpr: float = MAX_FPR,
          seed: int = SEED) -> InjectionModel:
    """Fit on `texts` (default: all) with the threshold chosen from their out-of-fold benign scores."""
    texts = np.arange(len(features.labels)) if texts is None else texts
    oof = out_of_fold(features, texts, l2, seed=seed)
    threshold = choose_threshold(oof[~features.labels[texts]], max_fpr)
    model = fit(features, texts, l2, threshold)
    return model


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One leave-one-category-out fold: recall on the unseen attack category, FP rate on held-out benign texts."""

    category: str
    attacks: int
    recall: float
    benign: int
    false_positive_rate: float
    threshold: float


def leave_one_category_out(features: Features, l2: float = L2, max_fpr: float = MAX_FPR, seed: int = SEED,
                           categories: Sequence[str] | None = None) -> list[HeldOut]:
    """Per attack category: train (threshold by inner cross-validation) without it and a benign fold, test on both."""
    texts = np.arange(len(features.labels))
    attack_categories = sorted(set(features.categories[features.labels]))
    benign_folds = folds(features, texts[~features.labels], len(attack_categories), seed)
    results = []
    for category, benign in zip(attack_categories, benign_folds, strict=True):
        if categories is not None and category not in categories:
            continue
        attacks = texts[features.labels & (features.categories == category)]
        model = train(features, np.setdiff1d(texts, np.concatenate([attacks, benign])), l2, max_fpr, seed)
        results.append(HeldOut(
            category, len(attacks), float(np.mean(text_scores(model, features, attacks) >= model.threshold)),
            len(benign), float(np.mean(text_scores(model, features, benign) >= model.threshold)), model.threshold,
        ))
    return results


def in_sample(model: InjectionModel, features: Features) -> tuple[float, float]:
    """Recall and false-positive rate of `model` on the texts it was trained on."""
    texts = np.arange(len(features.labels))
    flagged = text_scores(model, features, texts) >= model.threshold
    return float(flagged[features.labels].mean()), float(flagged[~features.labels].mean())
