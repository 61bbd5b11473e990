"""Fakes of hosted providers' own wire formats (Anthropic Messages, Gemini generateContent), on loopback.

Run one with the fake upstream's runner: `start_fake_upstream_thread(app_factory=build_anthropic_app)`;
the handle's `url` is then not meaningful (it ends in `/v1`): use `base_url` for Anthropic and
`base_url + "/v1beta"` for Gemini. The OpenAI wire format is the plain fake upstream.
"""

from sidecar.fake_upstream.providers.anthropic import build_anthropic_app
from sidecar.fake_upstream.providers.gemini import build_gemini_app

__all__ = ["build_anthropic_app", "build_gemini_app"]
