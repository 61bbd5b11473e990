"""Counting a request's tokens with the tokenizer of the model that will read it.

- OpenAI models: tiktoken's encodings through litellm's `token_counter` (litellm bundles the encoding files,
  so nothing is downloaded); litellm takes seconds to import, so it is loaded when such a model is configured
  with a context-length guard, at start-up, never on the request path.
- Local models: the serving engine's own tokenizer through its `/tokenize` endpoint (llama.cpp, as the
  embedded model, and vLLM both have one), so the count is the one the engine will see.
- Anything else: an estimate of characters per token (`chars:4`), named as such in the setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp
import orjson

from core.errors import ConfigError

_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "davinci", "babbage")
_PER_MESSAGE = 4  # role and separators around each chat message (OpenAI's documented overhead, about)


class TokenCounter(Protocol):
    """Counts the tokens of a chat's messages (or of plain texts for the other endpoints)."""

    async def count(self, texts: Sequence[str], chat: bool) -> int: ...


class CharsCounter:
    """An estimate: characters divided by a typical characters-per-token ratio."""

    def __init__(self, chars_per_token: float = 4.0) -> None:
        if chars_per_token <= 0:
            raise ConfigError("chars per token must be positive")
        self.chars_per_token = chars_per_token

    async def count(self, texts: Sequence[str], chat: bool) -> int:
        tokens = sum(int(len(text) / self.chars_per_token + 0.999) for text in texts)
        return tokens + (_PER_MESSAGE * len(texts) if chat else 0)


class TiktokenCounter:
    """tiktoken through litellm, for OpenAI models."""

    def __init__(self, model: str) -> None:
        from core.litellm_loader import load_litellm

        self._litellm: Any = load_litellm()
        self.model = model
        self._litellm.token_counter(model=model, text="warm up")  # loads the encoding now, not per request

    async def count(self, texts: Sequence[str], chat: bool) -> int:
        if chat:
            messages = [{"role": "user", "content": text} for text in texts]
            return int(self._litellm.token_counter(model=self.model, messages=messages))
        return sum(int(self._litellm.token_counter(model=self.model, text=text)) for text in texts)


class ServerCounter:
    """The serving engine's `/tokenize` (llama.cpp: `{"content"}` -> `{"tokens"}`; vLLM: `{"prompt"}` -> `{"count"}`)."""

    def __init__(self, session: aiohttp.ClientSession, root_url: str, model: str | None = None) -> None:
        self._session = session
        self._url = root_url.rstrip("/").removesuffix("/v1") + "/tokenize"
        self._model = model

    async def count(self, texts: Sequence[str], chat: bool) -> int:
        joined = "\n".join(texts)
        body: dict[str, Any] = {"content": joined, "prompt": joined}
        if self._model:
            body["model"] = self._model
        async with self._session.post(self._url, data=orjson.dumps(body),
                                      headers={"content-type": "application/json"}) as response:
            document = orjson.loads(await response.read())
        if isinstance(document.get("tokens"), list):
            tokens = len(document["tokens"])
        elif isinstance(document.get("count"), int):
            tokens = document["count"]
        else:
            raise TypeError(f"{self._url} answered without a token list or count")
        return tokens + (_PER_MESSAGE * len(texts) if chat else 0)


def is_openai_model(name: str) -> bool:
    """True for OpenAI's own model names (with or without an `openai/` prefix)."""
    bare = name.removeprefix("openai/")
    return bare.startswith(_OPENAI_PREFIXES)


def choose_counter(setting: str, model: str | None, runtime: Any) -> TokenCounter:
    """The counter a context-length guard asked for; `auto` picks by the model's deployment."""
    kind, _, argument = setting.partition(":")
    if kind == "chars":
        return CharsCounter(float(argument or 4))
    if kind == "tiktoken":
        return TiktokenCounter(argument or model or "gpt-4o")
    if kind == "server":
        if not argument:
            raise ConfigError("tokenizer server:<base url> needs the server's URL")
        return ServerCounter(runtime.session, argument)
    if kind != "auto":
        raise ConfigError(f"unknown tokenizer {setting!r} (auto, tiktoken:<model>, server:<url>, chars:<n>)")
    return _auto_counter(model, runtime)


def _auto_counter(model: str | None, runtime: Any) -> TokenCounter:
    if model is None:
        return CharsCounter()
    route = runtime.settings.models.get(model)
    upstream = model
    if route is not None:
        deployment = route.deployments[0]
        upstream = deployment.model or model
    if is_openai_model(upstream):
        return TiktokenCounter(upstream.removeprefix("openai/"))
    embedded = getattr(runtime, "embedded", None)
    if embedded is not None and model == runtime.settings.embedded.model_name:
        return ServerCounter(runtime.session, embedded.root_url)
    return CharsCounter()
