"""Reading and rewriting the text of requests and answers (chat, completions, embeddings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidecar.request_text import message_text, request_texts, user_text

__all__ = ["Rewrite", "message_text", "request_texts", "rewrite_request", "user_text"]

Rewrite = Callable[[str], str]


def rewrite_request(payload: dict[str, Any], rewrite: Rewrite) -> dict[str, Any]:
    """A copy of `payload` whose message contents (or prompt/input strings) went through `rewrite`."""
    changed = dict(payload)
    messages = payload.get("messages")
    if isinstance(messages, list):
        changed["messages"] = [_rewrite_message(m, rewrite) for m in messages]
        return changed
    for key in ("prompt", "input"):
        value = payload.get(key)
        if isinstance(value, str):
            changed[key] = rewrite(value)
        elif isinstance(value, list):
            changed[key] = [rewrite(item) if isinstance(item, str) else item for item in value]
    return changed


def _rewrite_message(message: Any, rewrite: Rewrite) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": rewrite(content)}
    if isinstance(content, list):
        parts = [
            {**part, "text": rewrite(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
        return {**message, "content": parts}
    return message


def reply_text(document: Any) -> str | None:
    """The first choice's text of a chat or completion answer (None when there is none)."""
    if not isinstance(document, dict):
        return None
    choices = document.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    message = choice.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        return content if isinstance(content, str) else None
    text = choice.get("text")
    return text if isinstance(text, str) else None


def rewrite_reply(document: dict[str, Any], rewrite: Rewrite) -> bool:
    """Rewrite every choice's text in place; True when something changed."""
    changed = False
    for choice in document.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        holder, key = (message, "content") if isinstance(message, dict) else (choice, "text")
        value = holder.get(key)
        if isinstance(value, str):
            new = rewrite(value)
            if new != value:
                holder[key] = new
                changed = True
    return changed
