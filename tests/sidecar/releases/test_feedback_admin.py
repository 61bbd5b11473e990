"""`POST /v1/feedback`, the admin release routes (gate refusals as 409, forced promotions audited)."""

from __future__ import annotations

import httpx

from core.releases import ArmSpec, audit_log, release_status, start_experiment
from core.tables import Run
from tests.sidecar.releases.conftest import ADMIN_KEY
from tests.sidecar.test_proxy import wait_record

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def base(proxy) -> str:
    return proxy.url.removesuffix("/v1")


def test_feedback_is_recorded_against_the_arm_that_served(releases, release_sidecar):
    releases.release("You are polite.")
    other = releases.write("You are cheerful.")
    start_experiment(releases.engine, "tone", "greet", [ArmSpec("control"), ArmSpec("cheerful", version=other)],
                     registry=releases.registry)
    proxy, collector = release_sidecar()
    body = {"model": "fake-model", "prompt": {"name": "greet", "variables": {"name": "Ada"}}}
    served = httpx.post(proxy.url + "/chat/completions", json=body, headers={"X-Tollgate-User": "u7"})
    request_id = served.headers["x-request-id"]
    variant = served.headers["x-tollgate-variant"]
    response = httpx.post(proxy.url + "/feedback", json={"request_id": request_id, "outcome": "converted",
                                                         "value": 1, "details": {"basket": 3}})
    assert response.status_code == 201, response.text
    document = response.json()
    assert (document["object"], document["experiment"], document["variant"]) == ("feedback", "tone", variant)
    wait_record(collector, request_id)
    from sqlmodel import Session, select

    from core.tables import Feedback

    with Session(releases.engine) as session:
        [row] = session.exec(select(Feedback)).all()
    assert (row.request_id, row.outcome, row.value, row.variant, row.details) == (
        request_id, "converted", 1.0, variant, {"basket": 3})


def test_bad_feedback_is_a_400(releases, release_sidecar):
    proxy, _ = release_sidecar()
    for body, param in (({"outcome": "x"}, "request_id"), ({"request_id": "r"}, "outcome"),
                        ({"request_id": "r", "outcome": "x", "value": "high"}, "value")):
        response = httpx.post(proxy.url + "/feedback", json=body)
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert httpx.get(proxy.url + "/feedback").status_code == 405


def test_admin_promotion_is_gated_forced_with_a_reason_and_audited(releases, release_sidecar):
    version = releases.write("You are polite.")
    proxy, _ = release_sidecar()
    url = base(proxy) + "/admin/releases/greet/promote"
    assert httpx.post(url, json={}).status_code == 401
    refused = httpx.post(url, json={"version": version}, headers=ADMIN)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "gate_refused"
    assert release_status(releases.engine) == []
    no_reason = httpx.post(url, json={"version": version, "force": True}, headers=ADMIN)
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["message"]
    forced = httpx.post(url, json={"version": version, "force": True, "reason": "incident 12", "actor": "ana"},
                        headers=ADMIN)
    assert forced.status_code == 200 and forced.json()["forced"] is True
    [entry] = audit_log(releases.engine)
    assert (entry.forced, entry.reason, entry.actor) == (True, "incident 12", "ana")
    status = httpx.get(base(proxy) + "/admin/releases", headers=ADMIN).json()
    assert [(row["label"], row["target"]["version"]) for row in status["data"]] == [("production", version)]


def test_admin_promotion_of_a_passed_version_and_rollback(releases, release_sidecar):
    first = releases.release("one")
    second = releases.write("two")
    from sqlmodel import Session

    with Session(releases.engine) as session:
        session.add(Run(id="a" * 32, harness_version="t", status="finished", prompt_versions={"greet": second},
                        suites={"greeting": {"prompt": "greet", "score": 1.0, "verdict": "pass"}}, exit_status=0))
        session.commit()
    proxy, _ = release_sidecar()
    promoted = httpx.post(base(proxy) + "/admin/releases/greet/promote", json={"version": second}, headers=ADMIN)
    assert promoted.status_code == 200 and promoted.json()["forced"] is False
    assert promoted.json()["gate"]["run_id"] == "a" * 32
    back = httpx.post(base(proxy) + "/admin/releases/greet/rollback", json={"reason": "oops"}, headers=ADMIN)
    assert back.status_code == 200 and back.json()["after"]["version"] == first
    audit = httpx.get(base(proxy) + "/admin/releases/audit?subject=greet", headers=ADMIN).json()["data"]
    assert [row["action"] for row in audit][:2] == ["rollback", "promote"]


def test_admin_release_routes_refuse_bad_subjects_as_json_400(releases, release_sidecar):
    proxy, _ = release_sidecar()
    for subject in ("x" * 300, "a%00b", "bad%20name", "%2E%2E", "%2E%2E%5Cx"):
        for method, action, body in (("POST", "promote", {"model": "fake-model", "force": True, "reason": "r"}),
                                     ("POST", "canary", {"model": "fake-model", "weight": 0.1}),
                                     ("POST", "shadow", {"model": "fake-model"}),
                                     ("POST", "rollback", {}),
                                     ("DELETE", "canary", None)):
            response = httpx.request(method, f"{base(proxy)}/admin/releases/{subject}/{action}", json=body,
                                     headers=ADMIN)
            assert response.status_code == 400, (subject, action, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and error["param"] == "subject"
    assert release_status(releases.engine) == []
