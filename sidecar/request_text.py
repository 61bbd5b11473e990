"""Reading the text out of an OpenAI request: chat messages (strings or content parts), prompts, inputs.

Guards, routing rules, the cache and prefix affinity all read requests the same way through these functions.
"""

from __future__ import annotations

from typing import Any


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
