"""Malformed multipart uploads to `/v1/files` are 400s in the OpenAI error shape (issue #13, item 14).

python-multipart raised `MultipartParseError` out of the route, which uvicorn answered with a plain-text
500; these bodies are the shapes the fuzz battery (benchmarks/fuzz.py) found.
"""

from __future__ import annotations

import httpx
import pytest

from benchmarks.fuzz_multipart import LINE, valid_upload
from tests.sidecar.batch.test_batches import batch_settings, models

BOUNDARY = "fuzzboundary"
GOOD = valid_upload(BOUNDARY)
MALFORMED = [
    ("first boundary does not match", GOOD.replace(b"--fuzzboundary", b"--fuzzboundaryX", 1), BOUNDARY),
    ("bare LF line ends", GOOD.replace(b"\r\n", b"\n"), BOUNDARY),
    ("header without a colon", GOOD.replace(b"Content-Disposition: ", b"Content-Disposition"), BOUNDARY),
    ("garbage before the first boundary", b"preamble \x00\xff" + GOOD, BOUNDARY),
    ("truncated in the file part", GOOD[: len(GOOD) - 30], BOUNDARY),
    ("no closing boundary", GOOD.replace(b"--fuzzboundary--", b""), BOUNDARY),
    ("boundary longer than RFC 2046 allows", valid_upload("x" * 300), "x" * 300),
    ("empty boundary", GOOD, ""),
    ("boundary with a non-ASCII byte", valid_upload("caf\u00e9"), "caf\u00e9"),
]


@pytest.mark.parametrize(("name", "body", "boundary"), MALFORMED, ids=[case[0] for case in MALFORMED])
def test_a_malformed_upload_is_a_json_400(make_sidecar, fake, name: str, body: bytes, boundary: str) -> None:
    proxy, _ = make_sidecar(models(fake), **batch_settings())
    header = f"multipart/form-data; boundary={boundary}".encode("latin-1")
    response = httpx.post(proxy.url + "/files", content=body, headers=[(b"content-type", header)])
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert httpx.get(proxy.url + "/files").json()["data"] == []  # nothing half-stored


def test_a_well_formed_upload_still_works(make_sidecar, fake) -> None:
    proxy, _ = make_sidecar(models(fake), **batch_settings())
    response = httpx.post(proxy.url + "/files", content=GOOD,
                          headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.status_code == 200, response.text
    file_id = response.json()["id"]
    assert httpx.get(f"{proxy.url}/files/{file_id}/content").content == LINE + b"\n"
