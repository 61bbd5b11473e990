"""The prompt registry: the `.prompt` files of one directory, looked up by name."""

from __future__ import annotations

import builtins
import difflib
import re
import threading
from pathlib import Path
from typing import Any

from core.prompts.errors import PromptError
from core.prompts.prompt_file import PromptFile, load_prompt
from core.prompts.rendering import RenderedPrompt, render

SUFFIX = ".prompt"
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_NAME_CHARS = 200


class PromptRegistry:
    """Prompts under `root`, one `<name>.prompt` file each.

    Files are parsed on first use and re-parsed when their modification time or size changes, so a long
    session sees edits without paying to re-read unchanged files.
    """

    def __init__(self, root: str | Path = "prompts") -> None:
        self.root = Path(root)
        self._cache: dict[Path, tuple[int, int, PromptFile]] = {}
        self._lock = threading.Lock()

    def names(self) -> builtins.list[str]:
        """The names of every prompt file under the root, sorted."""
        if not self.root.is_dir():
            raise PromptError(f"prompt directory {self.root} does not exist")
        return sorted(path.stem for path in self.root.glob(f"*{SUFFIX}") if path.is_file())

    def list(self) -> builtins.list[PromptFile]:
        """Every prompt under the root, parsed, sorted by name."""
        return [self.get(name) for name in self.names()]

    def get(self, name: str) -> PromptFile:
        """The prompt called `name`; an unknown name is a PromptError listing close matches."""
        if len(name) > MAX_NAME_CHARS or not _NAME_RE.fullmatch(name):
            raise PromptError(
                f"invalid prompt name {name[:60]!r} (at most {MAX_NAME_CHARS} letters, digits, '_', '-' and '.')"
            )
        path = self.root / f"{name}{SUFFIX}"
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise PromptError(self._unknown(name)) from None
        except OSError as exc:  # a name the file system refuses (too long for it, ...) is not a prompt here
            raise PromptError(f"cannot read prompt {name[:60]!r}: {exc.strerror}") from exc
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        prompt = load_prompt(path)
        with self._lock:
            self._cache[path] = (stat.st_mtime_ns, stat.st_size, prompt)
        return prompt

    def render(
        self, name: str, variables: dict[str, Any] | None = None, variant: str | None = None
    ) -> RenderedPrompt:
        """Render the prompt called `name` (see `core.prompts.render`)."""
        return render(self.get(name), variables, variant)

    def _unknown(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        if close:
            hint = f"did you mean: {', '.join(close)}?"
        else:
            hint = f"known: {', '.join(names)}" if names else "the directory holds no prompts"
        return f"unknown prompt {name!r} in {self.root} ({hint})"
