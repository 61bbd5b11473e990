"""Quiet and offline defaults for the libraries Tollgate loads.

Nothing may phone home or download at run time; these are applied once at start-up by the
CLI, the pytest plugin and the test configuration. Values already set by the user win.
"""

from __future__ import annotations

import os

OFFLINE_ENV: dict[str, str] = {
    "DEEPEVAL_TELEMETRY_OPT_OUT": "1",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_OFFLINE_MODE": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_env(cache_dir: str | None = None) -> None:
    """Set the quiet/offline variables unless the environment already sets them."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    # deepeval writes its state (`.deepeval/`) where this points, read once when it is imported: keep it under
    # Tollgate's data folder rather than the user's working directory.
    os.environ.setdefault("DEEPEVAL_CACHE_FOLDER", os.path.join(cache_dir or ".tollgate", "deepeval"))
