"""The HTTP surface through the real waitress server: signatures, malformed payloads, /healthz."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from waitress.server import create_server

from bot.db import make_engine
from bot.web import WebApp
from tests.factories import make_desk
from tests.fakes.slack import FakeSlack
from tests.harness import Bot, sign

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def command_body(user: str = "UTRD1", text_: str = "help") -> bytes:
    return urlencode(
        {"command": "/ibstatus", "text": text_, "user_id": user, "team_id": "T1", "channel_id": "C1"}
    ).encode()


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in ("answer", "checklist_run")}


def still_serving(bot: Bot) -> None:
    assert bot.http.get("/healthz").status_code == 200
    assert bot.command("UTRD1", "help").status_code == 200


# --- signatures ------------------------------------------------------------------------


def test_a_correctly_signed_request_is_accepted(bot: Bot) -> None:
    response = bot.post(command_body(), FORM)
    assert response.status_code == 200
    assert "/ibstatus" in response.json()["text"]


def _signature(kind: str, body: bytes, ts: str) -> bytes | None:
    return {
        "wrong-secret": sign(body, ts, "wrong-secret").encode(),
        "body-tampered": sign(body + b"&x=1", ts).encode(),
        "zero-signature": b"v0=" + b"0" * 64,
        "garbage-signature": b"garbage",
        "non-ascii-signature": "v0=é".encode(),  # raw bytes on the wire
        "no-timestamp": sign(body, ts).encode(),
        "no-signature": None,
        "no-headers": None,
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "wrong-secret",
        "body-tampered",
        "zero-signature",
        "garbage-signature",
        "non-ascii-signature",
        "no-timestamp",
        "no-signature",
        "no-headers",
    ],
)
def test_bad_signatures_get_401(bot: Bot, kind: str) -> None:
    body = command_body()
    ts = str(int(time.time()))
    sent: dict[bytes, bytes] = {b"Content-Type": FORM.encode()}
    if kind not in ("no-timestamp", "no-headers"):
        sent[b"X-Slack-Request-Timestamp"] = ts.encode()
    signature = _signature(kind, body, ts)
    if signature is not None:
        sent[b"X-Slack-Signature"] = signature
    response = bot.http.post("/slack/events", content=body, headers=sent)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid signature"}


@pytest.mark.parametrize(
    "offset",
    [-301, -3600, 301, 86_400],
    ids=["5min-1s-old", "1h-old", "5min-1s-ahead", "1d-ahead"],
)
def test_timestamps_outside_five_minutes_get_401_even_when_signed(bot: Bot, offset: int) -> None:
    body = command_body()
    ts = str(int(time.time()) + offset)
    response = bot.post(body, FORM, timestamp=ts)  # signed correctly for that timestamp
    assert response.status_code == 401


def test_a_timestamp_within_five_minutes_is_accepted(bot: Bot) -> None:
    assert bot.post(command_body(), FORM, timestamp=str(int(time.time()) - 240)).status_code == 200


@pytest.mark.parametrize("ts", ["abc", "", "1.5e9", "-1", "17000000000000000000000000"])
def test_non_numeric_or_absurd_timestamps_get_401(bot: Bot, ts: str) -> None:
    body = command_body()
    response = bot.post(body, FORM, timestamp=ts, signature=sign(body, ts))
    assert response.status_code == 401
    still_serving(bot)


# --- malformed but signed payloads -------------------------------------------------------


def form_payload(payload: object) -> bytes:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


MALFORMED: dict[str, tuple[bytes, str]] = {
    "form-payload-not-json": (form_payload("not-json"), FORM),
    "form-payload-truncated-json": (form_payload('{"type": "block_actions", "actions": ['), FORM),
    "form-payload-list": (form_payload([1, 2]), FORM),
    "form-payload-string": (form_payload("x"), FORM),
    "form-payload-null": (form_payload("null"), FORM),
    "json-body-not-json": (b"{not json", JSON),
    "json-body-list": (b"[1, 2]", JSON),
    "json-body-null": (b"null", JSON),
    "json-body-number": (b"42", JSON),
    "bad-utf8": (b"\xff\xfe\xfd", FORM),
    "block-actions-without-actions": (form_payload({"type": "block_actions", "user": {"id": "UTRD1"}}), FORM),
    "block-actions-empty-actions": (
        form_payload({"type": "block_actions", "user": {"id": "UTRD1"}, "actions": []}),
        FORM,
    ),
    "block-actions-actions-not-objects": (
        form_payload({"type": "block_actions", "user": {"id": "UTRD1"}, "actions": [1, "x"]}),
        FORM,
    ),
    "block-actions-actions-a-string": (
        form_payload({"type": "block_actions", "user": {"id": "UTRD1"}, "actions": "checklist_confirm_all"}),
        FORM,
    ),
    "block-actions-action-without-id": (
        form_payload({"type": "block_actions", "user": {"id": "UTRD1"}, "actions": [{"value": "1"}]}),
        FORM,
    ),
    "block-actions-user-a-list": (
        form_payload(
            {
                "type": "block_actions",
                "user": ["UTRD1"],
                "actions": [{"action_id": "checklist_confirm_all", "value": "1"}],
            }
        ),
        FORM,
    ),
    "view-submission-without-view": (form_payload({"type": "view_submission", "user": {"id": "UTRD1"}}), FORM),
    "view-submission-view-a-string": (
        form_payload({"type": "view_submission", "user": {"id": "UTRD1"}, "view": "x"}),
        FORM,
    ),
    "view-submission-state-a-list": (
        form_payload(
            {
                "type": "view_submission",
                "user": {"id": "UTRD1"},
                "view": {"type": "modal", "callback_id": "checklist_report_modal", "state": []},
            }
        ),
        FORM,
    ),
    "event-callback-without-event": (json.dumps({"type": "event_callback", "team_id": "T1"}).encode(), JSON),
    "event-callback-event-a-string": (
        json.dumps({"type": "event_callback", "event": "app_home_opened"}).encode(),
        JSON,
    ),
    "command-repeated": (b"command=/ibstatus&command=/x&user_id=UTRD1", FORM),
    "command-without-user": (urlencode({"command": "/ibstatus", "text": "desk"}).encode(), FORM),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_signed_payloads_get_4xx_or_a_handled_200_never_500(
    bot: Bot, engine: Engine, fake_slack: FakeSlack, case: str
) -> None:
    make_desk(engine)
    before = table_counts(engine)
    body, content_type = MALFORMED[case]
    response = bot.post(body, content_type)
    assert response.status_code < 500, response.text
    assert 400 <= response.status_code < 500 or response.status_code == 200
    bot.settle()
    assert table_counts(engine) == before
    still_serving(bot)


def test_malformed_json_gets_a_400_that_says_so(bot: Bot) -> None:
    response = bot.post(b"{not json", JSON)
    assert response.status_code == 400
    assert response.json() == {"error": "malformed payload"}


def test_url_verification_is_answered(bot: Bot) -> None:
    response = bot.post_json({"type": "url_verification", "challenge": "c-123", "token": "legacy"})
    assert response.status_code == 200
    assert response.json() == {"challenge": "c-123"}


def test_a_burst_of_malformed_requests_does_not_take_the_server_down(bot: Bot) -> None:
    bodies = [MALFORMED[c] for c in sorted(MALFORMED)] * 3
    statuses: list[int] = []
    lock = threading.Lock()

    def send(body: bytes, content_type: str) -> None:
        status = bot.post(body, content_type).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send, args=b) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(statuses) == len(bodies)
    assert all(s < 500 for s in statuses), statuses
    bot.settle()
    still_serving(bot)


# --- routing ---------------------------------------------------------------------------


def test_healthz_answers_200_when_the_database_answers(bot: Bot) -> None:
    response = bot.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok"}
    assert bot.http.head("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/", "GET", 404),
        ("/slack/event", "POST", 404),
        ("/slack/events/extra", "POST", 404),
        ("/healthz/", "GET", 404),
        ("/slack/events", "GET", 405),
        ("/slack/events", "PUT", 405),
        ("/healthz", "POST", 405),
        ("/healthz", "DELETE", 405),
    ],
)
def test_unknown_paths_404_and_wrong_methods_405(bot: Bot, path: str, method: str, status: int) -> None:
    response = bot.http.request(method, path)
    assert response.status_code == status
    assert "error" in response.json()


def test_oversized_bodies_are_refused(bot: Bot) -> None:
    body = b"payload=" + b"x" * (1024 * 1024 + 1)
    response = bot.post(body, FORM)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2",
        "sqlite:////nonexistent-dir/cannot/create/preflight.db",
    ],
    ids=["postgres-unreachable", "sqlite-unwritable-path"],
)
def test_healthz_answers_503_when_the_database_does_not(bot: Bot, url: str) -> None:
    dead = make_engine(url)
    app = WebApp(bot.runtime.bolt, signing_secret="s", engine=dead)
    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        port = server.effective_port  # type: ignore[union-attr]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            response = http.get("/healthz")
            assert response.status_code == 503
            assert response.json() == {"database": "unreachable"}
            assert http.get("/healthz").status_code == 503  # and keeps answering
    finally:
        server.close()
        dead.dispose()
