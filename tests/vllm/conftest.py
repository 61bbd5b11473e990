"""The real-vLLM lane: opt-in (`-m vllm`), against a vLLM server that `scripts/vllm_lane.sh` starts.

The script exports `TOLLGATE_VLLM_URL` (the server's OpenAI base URL, ending in /v1) and
`TOLLGATE_VLLM_MODEL` (its served model name). Selected without them, the tests fail with that advice
instead of skipping, so a lane that was asked for can never pass empty.
"""

from __future__ import annotations

import os

import pytest

from tests.sidecar.conftest import make_sidecar  # noqa: F401  (the sidecar fixture, shared)

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="session")
def vllm_server() -> tuple[str, str]:
    url = os.environ.get("TOLLGATE_VLLM_URL")
    model = os.environ.get("TOLLGATE_VLLM_MODEL", "smollm2")
    if not url:
        pytest.fail("no vLLM server: run the lane with scripts/vllm_lane.sh (it starts one and sets TOLLGATE_VLLM_URL)")
    return url.rstrip("/"), model
