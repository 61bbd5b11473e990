"""The trained injection detector: logistic regression over the MiniLM embedding plus lexical features.

A text's score is the highest probability over its readings (`injection_features.read`): the normalised text
and any decoded or de-obfuscated reading. Weights ship in `injection_model.npz` beside this module, written by
`tollgate guard train`; the file is read on first use and shared by every guard of the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ConfigError
from sidecar.guards.injection_features import FEATURE_NAMES, read

DEFAULT_MODEL = Path(__file__).with_name("injection_model.npz")
Embed = Callable[[Sequence[str]], np.ndarray]

_loaded: dict[Path, InjectionModel] = {}
_loaded_lock = threading.Lock()


@dataclass(frozen=True)
class InjectionModel:
    """Weights over [embedding, standardised lexical features], a bias, and the cross-validated threshold."""

    weights: np.ndarray
    bias: float
    lexical_mean: np.ndarray
    lexical_scale: np.ndarray
    threshold: float
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def probabilities(self, embeddings: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        """P(attack) for rows of embeddings and their (unscaled) lexical features."""
        return _sigmoid(design(embeddings, lexical, self.lexical_mean, self.lexical_scale) @ self.weights + self.bias)

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, weights=self.weights.astype(np.float32), bias=np.float64(self.bias),
            lexical_mean=self.lexical_mean, lexical_scale=self.lexical_scale, threshold=np.float64(self.threshold),
            feature_names=np.array(self.feature_names),
        )

    @classmethod
    def load(cls, path: Path) -> InjectionModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                model = cls(data["weights"].astype(np.float64), float(data["bias"]), data["lexical_mean"],
                            data["lexical_scale"], float(data["threshold"]), tuple(str(n) for n in data["feature_names"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot read the injection model {path}: {exc}") from exc
        if model.feature_names != FEATURE_NAMES:
            raise ConfigError(f"{path} was trained with other lexical features: retrain it with `tollgate guard train`")
        return model


def load_model(path: Path | None = None) -> InjectionModel:
    """The model at `path` (default: the shipped one), read once per process."""
    key = (path or DEFAULT_MODEL).resolve()
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = InjectionModel.load(key)
        return _loaded[key]


def design(embeddings: np.ndarray, lexical: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.hstack([embeddings.astype(np.float64), (lexical - mean) / scale])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def score_texts(model: InjectionModel, texts: Sequence[str], embed: Embed) -> np.ndarray:
    """Each text's highest P(attack) over its readings (all readings embedded in one batch)."""
    readings = [read(text) for text in texts]
    flat = [reading for r in readings for reading in r.all]
    owners = np.repeat(np.arange(len(readings)), [len(r.all) for r in readings])
    lexical = np.stack([r.features for r in readings])[owners]
    probabilities = model.probabilities(embed(flat), lexical)
    scores = np.zeros(len(texts))
    np.maximum.at(scores, owners, probabilities)
    return scores

