"""Reading and rewriting the text of requests and answers (chat, completions, embeddings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Rewrite = Callable[[str], str]


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def user_text(payload: dict[str, Any]) -> str:
    """What the user asked last: the last user message, or the prompt or input of the other endpoints."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return message_text(message.get("content"))
        return ""
    for key in ("prompt", "input"):
        value = payload.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return "\n".join(item for item in value if isinstance(item, str))
    return ""


def request_texts(payload: dict[str, Any]) -> list[str]:
    """Every text the request carries (all messages), in order."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        return [message_text(m.get("content")) for m in messages if isinstance(m, dict)]
    text = user_text(payload)
    return [text] if text else []


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
