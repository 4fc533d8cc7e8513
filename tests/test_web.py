"""The HTTP surface through the real waitress server: signatures, malformed payloads, /healthz."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk import WebClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from waitress.server import create_server

from bot.db import make_engine
from bot.web import MAX_BODY, SlackHealth, WebApp, make_server
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import BOT_TOKEN, Bot, sign

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def command_body(user: str = "UTRD1", text_: str = "help") -> bytes:
    return urlencode(
        {"command": "/ibstatus", "text": text_, "user_id": user, "team_id": "T1", "channel_id": "C1"}
    ).encode()


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in ("answer", "checklist_run")}


def run_until_closed(server: Any) -> None:
    try:
        server.run()
    except OSError:  # close() pulled the socket out from under the loop: that's the shutdown
        pass


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
    [-301, -3600, 302, 86_400],
    ids=["5min-1s-old", "1h-old", "5min-1s-ahead", "1d-ahead"],
)  # ahead: +302, as int() drops up to a second of the test's clock and the server reads it later
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
    assert response.json() == {"database": "ok", "slack": "unchecked", "slack_checked_at": None}
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
    thread = threading.Thread(target=run_until_closed, args=(server,), daemon=True)
    thread.start()
    try:
        port = server.effective_port  # type: ignore[union-attr]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            response = http.get("/healthz")
            assert response.status_code == 503
            assert response.json()["database"] == "unreachable"
            assert http.get("/healthz").status_code == 503  # and keeps answering
    finally:
        server.close()
        dead.dispose()


# --- request limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [b"\xb2", "²".encode(), b"1" * 5000, b"1" * 12, b"+1700000000", b"\xb9\xb2\xb3", b"0x65000000"],
    ids=[
        "superscript-two-latin1",
        "superscript-two-utf8",
        "5000-digits",
        "12-digits",
        "plus-sign",
        "superscripts-latin1",
        "hex",
    ],
)
def test_timestamps_that_are_not_a_few_ascii_digits_get_401_not_500(bot: Bot, ts: bytes) -> None:
    body = command_body()
    # Signed for exactly that header, as waitress hands it to the app (ISO-8859-1).
    headers = {
        b"Content-Type": FORM.encode(),
        b"X-Slack-Request-Timestamp": ts,
        b"X-Slack-Signature": sign(body, ts.decode("latin-1")).encode(),
    }
    response = bot.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid signature"}
    still_serving(bot)


NESTED = 100_000


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" * NESTED + b"]" * NESTED, JSON),
        (b'{"a":' * NESTED + b"1" + b"}" * NESTED, JSON),
        (b"payload=" + b"%5B" * NESTED + b"%5D" * NESTED, FORM),
    ],
    ids=["json-arrays", "json-objects", "form-payload-arrays"],
)
def test_a_signed_payload_nested_100k_deep_gets_400_not_500(
    bot: Bot, engine: Engine, body: bytes, content_type: str
) -> None:
    make_desk(engine)
    before = table_counts(engine)
    response = bot.post(body, content_type)
    assert response.status_code == 400
    assert response.json() == {"error": "malformed payload"}
    assert table_counts(engine) == before
    still_serving(bot)


def _raw_exchange(bot: Bot, head: bytes, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send ``head``, then ``chunks`` for as long as the server has not answered: the answer,
    and how many body bytes went out before it came."""
    port = int(bot.url.rsplit(":", 1)[1])
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        for chunk in chunks:
            if select.select([conn], [], [], 0)[0]:  # an answer (or a close) is waiting
                break
            try:
                conn.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = b""
        try:
            while more := conn.recv(65536):
                answer += more
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def test_a_200_mib_body_is_refused_from_its_headers_without_being_read(bot: Bot) -> None:
    declared = 200 * 1024 * 1024
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=0\r\n"
        b"Content-Length: %d\r\n\r\n" % declared
    )
    answer, sent = _raw_exchange(bot, head, (b"x" * 65536 for _ in range(declared // 65536)))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert sent < 8 * 1024 * 1024  # answered (and closed) long before 200 MiB went over the wire
    still_serving(bot)


def test_a_chunked_body_is_refused_once_it_passes_the_cap(bot: Bot) -> None:
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=0\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # 64 KiB per chunk, 200 MiB in all
    answer, sent = _raw_exchange(bot, head, (chunk for _ in range(3200)))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert MAX_BODY <= sent < 8 * 1024 * 1024
    still_serving(bot)


def test_a_body_of_exactly_the_cap_reaches_the_app(bot: Bot) -> None:
    body = b"payload=" + b"x" * (MAX_BODY - len(b"payload="))
    assert len(body) == MAX_BODY
    response = bot.post(body, FORM)
    assert response.status_code == 400  # signed, read, and refused by the app as malformed (not 413)


# --- /healthz reports Slack ----------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize(
    ("setup", "state", "error"),
    [
        ("ok", "ok", None),
        ("invalid_auth", "invalid", "invalid_auth"),
        ("token_revoked", "invalid", "token_revoked"),
        ("account_inactive", "invalid", "account_inactive"),
        ("server-error", "unreachable", "fatal_error"),
        ("closed-port", "unreachable", "Connection refused"),
    ],
)
def test_healthz_reports_slacks_reachability_and_stays_200_while_the_database_answers(
    bot: Bot, fake_slack: FakeSlack, setup: str, state: str, error: str | None
) -> None:
    base_url = fake_slack.base_url
    if setup == "closed-port":
        base_url = f"http://127.0.0.1:{closed_port()}/api/"
    elif setup == "server-error":
        fake_slack.script("auth.test", Fault(status=503))
    elif setup != "ok":
        fake_slack.script("auth.test", Fault(body={"ok": False, "error": setup}))
    health = SlackHealth(WebClient(token=BOT_TOKEN, base_url=base_url, timeout=5, retry_handlers=[]))
    bot.runtime.web.slack = health
    assert bot.http.get("/healthz").json()["slack"] == "unchecked"
    before = datetime.now(UTC).replace(microsecond=0)
    health.check()
    response = bot.http.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok" and body["slack"] == state
    assert body.get("slack_error") == error
    assert before <= datetime.fromisoformat(body["slack_checked_at"]) <= datetime.now(UTC)


def test_healthz_is_503_when_the_database_is_down_whatever_slack_says(bot: Bot, fake_slack: FakeSlack) -> None:
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    health = SlackHealth(WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url, timeout=5))
    health.check()
    app = WebApp(bot.runtime.bolt, signing_secret="s", engine=dead, slack=health)
    server = make_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=run_until_closed, args=(server,), daemon=True)
    thread.start()
    try:
        port = server.effective_port  # type: ignore[union-attr]
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert response.status_code == 503
        assert response.json()["database"] == "unreachable" and response.json()["slack"] == "ok"
    finally:
        server.close()
        dead.dispose()


def test_the_background_check_follows_slack_going_away_and_coming_back(fake_slack: FakeSlack) -> None:
    health = SlackHealth(WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url, timeout=5, retry_handlers=[]))
    assert health.check().state == "ok"
    fake_slack.script("auth.test", Fault(body={"ok": False, "error": "token_revoked"}))
    assert (health.check().state, health.latest.detail) == ("invalid", "token_revoked")
    assert health.check().state == "ok"
    health.interval = 0.05
    health.start()
    try:
        calls = len(fake_slack.of("auth.test"))
        assert fake_slack.wait_for(lambda: len(fake_slack.of("auth.test")) >= calls + 2, timeout=10)
    finally:
        health.stop()
    assert health.latest.state == "ok"
