"""Throughput of the numpy MiniLM encoder: sentences/s and tokens/s by text length, batch size and BLAS threads.

Run: python benchmarks/embeddings.py [--sentences 256] [--repeats 3]
Prints figures; asserts nothing (machines are noisy). Also prints the time to load the model.
"""

from __future__ import annotations

import argparse
import random
import time

from core import embeddings

WORDS = [
    *("booking", "hotel", "flight", "refund", "cancel", "tomorrow", "price", "guest", "room", "night"),
    *("breakfast", "city", "airport", "the", "a", "of", "to", "and", "is", "for", "with", "on", "my"),
    *("please", "can", "you", "I", "want", "change", "date"),
]


def make_texts(count: int, words: int, seed: int) -> list[str]:
    """Reproducible sentences of about `words` words each."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(count)]


def measure(encoder: embeddings.SentenceEncoder, texts: list[str], batch_size: int, repeats: int) -> float:
    """Best-of-`repeats` seconds to encode `texts` (best, since noise only ever adds time)."""
    encoder.encode(texts[:batch_size], batch_size=batch_size)  # warm caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode(texts, batch_size=batch_size)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    encoders = {
        "1": embeddings.SentenceEncoder(embeddings.model_directory(), blas_threads=1),
        "default": embeddings.SentenceEncoder(embeddings.model_directory(), blas_threads=None),
    }
    print(f"load: {(time.perf_counter() - start) / len(encoders) * 1000:.0f} ms per encoder")

    print(f"{'words':>6} {'batch':>6} {'blas':>8} {'sent/s':>9} {'tok/s':>9} {'ms/sent':>8}")
    for words in (8, 32, 128):
        texts = make_texts(args.sentences, words, seed=words)
        tokens = sum(len(ids) for ids in (e.ids for e in encoders["1"]._tokenizer.encode_batch(texts)))
        for batch_size in (1, 8, 32):
            for label, encoder in encoders.items():
                seconds = measure(encoder, texts, batch_size, args.repeats)
                rate = len(texts) / seconds
                print(
                    f"{words:>6} {batch_size:>6} {label:>8} {rate:>9.1f} {tokens / seconds:>9.0f} "
                    f"{1000 / rate:>8.2f}"
                )
    pair = ["How do I cancel my booking?", "I want to cancel my reservation"]
    start = time.perf_counter()
    for _ in range(50):
        embeddings.encode(pair)
    print(
        f"similarity pair (2 short sentences, default encoder): {(time.perf_counter() - start) / 50 * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
