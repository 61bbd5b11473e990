"""The prompt registry: versioned `.prompt` files parsed, validated and rendered into chat messages.

```python
registry = PromptRegistry("prompts")
rendered = registry.render("booking_extract", {"booking_text": "..."}, variant="fr")
rendered.messages, rendered.model, response_format(rendered)
```
"""

from core.prompts.errors import PromptError
from core.prompts.prompt_file import SECTION_NAMES, PromptFile, Variant, content_version, load_prompt
from core.prompts.registry import PromptRegistry
from core.prompts.rendering import RenderedPrompt, render, response_format, variables

__all__ = [
    "SECTION_NAMES",
    "PromptError",
    "PromptFile",
    "PromptRegistry",
    "RenderedPrompt",
    "Variant",
    "content_version",
    "load_prompt",
    "render",
    "response_format",
    "variables",
]
