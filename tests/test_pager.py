"""The pager client over real HTTP (fake PagerDuty / webhook on 127.0.0.1) and `preflight desk set`."""

from __future__ import annotations

import hashlib
import hmac
import ssl
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.cli import main
from bot.crypto import Keyring
from bot.db import session_scope
from bot.delivery.errors import DeliveryError
from bot.delivery.pager import SIGNATURE_HEADER, Pager, PagerTarget, _certificates
from bot.desks import service as desks
from bot.desks.models import Desk
from tests.support.escalation_fixtures import SECRET_KEY, fake_pager, make_pager  # noqa: F401 - a fixture
from tests.support.factories import make_desk
from tests.support.fake_gateway import FakeGateway
from tests.support.fakes.pager import FakePager, PagerFault
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN

EVENT = {"action": "trigger", "escalation_id": 42, "escalation_kind": "recovery_path", "summary": "UTRD1 lost MFA"}


def desk(kind: str, url: str, secret: str | None) -> PagerTarget:
    return PagerTarget(
        desk_name="equities",
        kind=kind,
        url=url,
        secret_token=Keyring(SECRET_KEY).encrypt(secret) if secret else None,
    )


def test_pagerduty_events_v2(fake_pager: FakePager) -> None:  # noqa: F811
    pager = make_pager()
    d = desk("pagerduty", fake_pager.url, "routing-key")
    for action in ("trigger", "acknowledge", "resolve"):
        result = pager.send(target=d, event={**EVENT, "action": action})
        assert result["status"] == 202
    trigger, ack, resolve = fake_pager.requests
    assert {r.path for r in fake_pager.requests} == {"/v2/enqueue"}
    assert trigger.body["routing_key"] == "routing-key" and trigger.body["dedup_key"] == "42"
    assert trigger.body["event_action"] == "trigger"
    assert trigger.body["payload"]["summary"] == "UTRD1 lost MFA"
    assert trigger.body["payload"]["source"] == "ib-preflight/equities"
    assert trigger.body["payload"]["severity"] == "critical"
    assert (ack.body["event_action"], ack.body["dedup_key"], "payload" in ack.body) == ("acknowledge", "42", False)
    assert resolve.body["event_action"] == "resolve"
    pager.close()


def test_webhook_is_signed_over_the_body(fake_pager: FakePager) -> None:  # noqa: F811
    pager = make_pager()
    pager.send(target=desk("webhook", f"{fake_pager.url}/hooks/preflight", "hook-secret"), event=EVENT)
    (request,) = fake_pager.requests
    assert request.path == "/hooks/preflight"
    expected = "sha256=" + hmac.new(b"hook-secret", request.raw, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER.lower()] == expected
    assert request.body["event"] == "trigger" and request.body["escalation_id"] == 42
    assert request.body["kind"] == "recovery_path"
    pager.close()


def test_faults_are_transient_or_permanent(fake_pager: FakePager) -> None:  # noqa: F811
    pager = Pager(keys=SECRET_KEY, timeout=1, retries=2, backoff=0.01, allow_private=True)
    d = desk("pagerduty", fake_pager.url, "rk")
    # 500, then slow (times out), then fine: retried inside one send.
    fake_pager.script(PagerFault(status=500), PagerFault(status=200, delay=2.0))
    assert pager.send(target=d, event=EVENT)["status"] == 202
    assert len(fake_pager.rejected) == 2 and len(fake_pager.requests) == 1
    # A 400 (bad routing key) is permanent.
    fake_pager.script(PagerFault(status=400))
    with pytest.raises(DeliveryError) as permanent:
        pager.send(target=d, event=EVENT)
    assert permanent.value.retry_after is None and "400" in str(permanent.value)
    # Down: transient, handed back to the outbox for a longer backoff.
    fake_pager.down()
    with pytest.raises(DeliveryError) as down:
        pager.send(target=d, event=EVENT)
    assert down.value.retry_after == 0.0 and "unreachable" in str(down.value)
    pager.close()


def test_a_secret_the_keys_cannot_read_is_a_permanent_failure(fake_pager: FakePager) -> None:  # noqa: F811
    target = PagerTarget(
        desk_name="equities", kind="pagerduty", url=fake_pager.url, secret_token=Keyring("other").encrypt("rk")
    )
    with pytest.raises(DeliveryError) as unreadable:
        make_pager().send(target=target, event=EVENT)
    assert unreadable.value.retry_after is None and "can't be decrypted" in str(unreadable.value)
    assert fake_pager.requests == []


def test_no_pager_configured_is_skipped() -> None:
    assert make_pager().send(target=desk("none", "", None), event=EVENT) == {
        "skipped": "no pager configured for the desk"
    }


# --- preflight desk set ---------------------------------------------------------------------


@pytest.fixture
def cli(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack) -> Engine:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    # Saving a channel asks (the fake) Slack whether the bot is in it.
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    monkeypatch.delenv("PREFLIGHT_SECRET_KEY", raising=False)
    make_desk(engine)
    return engine


def stored(engine: Engine) -> Desk:
    with session_scope(engine) as session:
        return desks.get_desk(session=session, name="equities")


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_desk_set_changes_the_policy(
    cli: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFLIGHT_SECRET_KEY", SECRET_KEY)
    argv = ["desk", "set", "equities", "--reminder-minutes", "20", "--ack-timeout-minutes", "10"]
    argv += ["--escalation-channel", "CESC1", "--pager-kind", "pagerduty", "--pager-secret", "rk-secret"]
    argv += ["--managers-channel", "CMGRS", "--summary-delay-minutes", "45"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reminder 20 min" in out and "weekly summary 45 min after the close to CMGRS" in out
    d = stored(cli)
    assert (d.reminder_minutes, d.ack_timeout_minutes, d.escalation_channel_id, d.pager_kind) == (
        20,
        10,
        "CESC1",
        "pagerduty",
    )
    assert d.pager_secret and "rk-secret" not in d.pager_secret
    assert (d.managers_channel_id, d.summary_delay_minutes) == ("CMGRS", 45)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--pager-kind", "webhook", "--pager-url", "not a url"], "malformed"),
        (["--pager-kind", "webhook", "--pager-url", "ftp://example.org/x"], "must start with https://"),
        (["--pager-url", "http://:80/x"], "must start with https://"),
        (
            ["--pager-kind", "webhook", "--pager-url", "https://hooks.example/x", "--pager-secret", "s"],
            "PREFLIGHT_SECRET_KEY",
        ),
        (["--pager-kind", "pagerduty"], "routing key"),
        (["--reminder-minutes", "-5"], "between 0 and 600"),
        (["--ack-timeout-minutes", "0"], "between 1 and 1440"),
        (["--escalation-channel", "#general"], "not a Slack channel ID"),
        (["--managers-channel", "managers"], "not a Slack channel ID"),
        (["--summary-delay-minutes", "-1"], "between 0 and 1440"),
        (["--pager-kind", "sms"], "invalid choice"),
        ([], "nothing to change"),
    ],
)
def test_desk_set_refuses_bad_input_and_changes_nothing(
    cli: Engine, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    before = stored(cli).model_dump()
    assert main(["desk", "set", "equities", *argv]) == 2
    assert needle in error_line(capsys)
    assert stored(cli).model_dump() == before


def test_escalations_run_with_at_is_idempotent(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN")  # queued, not delivered: the running bot's outbox delivers
    from bot.checklist import service as checklist
    from tests.support.harness import utc

    with session_scope(cli) as session:
        d = desks.get_desk(session=session, name="equities")
        claim = checklist.claim_post(session=session, desk=d, day=utc(2026, 11, 25).date(), now=utc(2026, 11, 25, 13))
        assert claim.run is not None
        checklist.mark_posted(session=session, run_id=claim.run.id or 0, ts="1.0", now=utc(2026, 11, 25, 13))
    assert main(["escalations", "run", "equities", "--at", "2026-11-25T09:00-05:00"]) == 0
    assert "3 escalation(s) opened" in capsys.readouterr().out
    assert main(["escalations", "run", "equities", "--at", "2026-11-25T14:00:00"]) == 0  # no zone: UTC
    assert "0 escalation(s) opened" in capsys.readouterr().out
    assert main(["escalations", "run", "equities", "--at", "tomorrow"]) == 2
    assert "ISO-8601" in error_line(capsys)
    assert main(["escalations", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("silent") == 3 and "0 delivered, 2 waiting (attempts 0)" in out


# --- where a page may go (bot.netguard, issue 17) -------------------------------------------

REFUSED_TARGETS = [
    ("http://169.254.169.254/latest/meta-data/iam", "must start with https://"),
    ("https://169.254.169.254/latest/meta-data/iam", "metadata address"),
    ("https://127.0.0.1:8443/hook", "loopback address"),
    ("https://10.1.2.3/hook", "private address"),
    ("https://[::1]/hook", "loopback address"),
    ("https://[::ffff:169.254.169.254]/x", "metadata address"),
    ("https://169.254.10.1/hook", "link-local address"),
]


@pytest.mark.parametrize(("url", "needle"), REFUSED_TARGETS)
def test_desk_set_refuses_internal_pager_targets(
    cli: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, needle: str
) -> None:
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", SECRET_KEY)
    monkeypatch.delenv("PREFLIGHT_ALLOW_PRIVATE_PAGER", raising=False)
    before = stored(cli).model_dump()
    assert main(["desk", "set", "equities", "--pager-kind", "webhook", "--pager-url", url]) == 2
    line = error_line(capsys)
    assert needle in line and "(--pager-url)" in line
    assert stored(cli).model_dump() == before


def test_private_pager_targets_only_when_allowed_and_metadata_never(
    cli: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", SECRET_KEY)
    monkeypatch.setenv("PREFLIGHT_ALLOW_PRIVATE_PAGER", "1")
    assert main(["desk", "set", "equities", "--pager-kind", "webhook", "--pager-url", "http://10.1.2.3:8080/h"]) == 0
    assert stored(cli).pager_url == "http://10.1.2.3:8080/h"
    capsys.readouterr()
    for url in ("http://169.254.169.254/latest/meta-data/iam", "https://169.254.169.254/", "https://169.254.1.1/"):
        assert main(["desk", "set", "equities", "--pager-url", url]) == 2
        assert "(--pager-url)" in error_line(capsys)
    assert stored(cli).pager_url == "http://10.1.2.3:8080/h"


def test_the_pager_secret_error_names_the_flag_that_was_used(
    cli: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("PREFLIGHT_SECRET_KEYS", raising=False)
    secret = tmp_path / "rk"
    secret.write_text("routing-key\n")
    assert main(["desk", "set", "equities", "--pager-kind", "pagerduty", "--pager-secret-file", str(secret)]) == 2
    line = error_line(capsys)
    assert "(--pager-secret-file)" in line and "PREFLIGHT_SECRET_KEY" in line


def test_a_name_resolving_to_loopback_at_delivery_is_a_permanent_failure_never_a_request(
    fake_pager: FakePager,  # noqa: F811
) -> None:
    """Saved while it resolved to a public address; at delivery the name resolves to 127.0.0.1
    (DNS rebinding): refused before any connection, permanently (the outbox records it)."""
    port = int(fake_pager.url.rsplit(":", 1)[1])
    pager = Pager(keys=SECRET_KEY, timeout=1, retries=1, backoff=0.01, resolve=lambda host, port: ["127.0.0.1"])
    with pytest.raises(DeliveryError) as refused:
        pager.send(target=desk("webhook", f"https://hooks.example:{port}/hook", "s"), event=EVENT)
    assert refused.value.retry_after is None
    assert "pager target refused" in str(refused.value) and "loopback" in str(refused.value)
    assert fake_pager.requests == [] and fake_pager.rejected == []
    # The PagerDuty base URL goes through the same guard.
    with pytest.raises(DeliveryError, match="metadata"):
        pager.send(target=desk("pagerduty", "https://169.254.169.254", "rk"), event=EVENT)
    pager.close()


def test_the_pager_connects_to_the_checked_address_and_never_follows_a_redirect(
    fake_pager: FakePager,  # noqa: F811
) -> None:
    """An allowed name is resolved once (by the guard) and the request goes to that address,
    the name in the Host header; a 3xx is an answer, not a hop."""
    port = int(fake_pager.url.rsplit(":", 1)[1])
    pager = Pager(keys=SECRET_KEY, timeout=1, retries=0, allow_private=True, resolve=lambda host, port: ["127.0.0.1"])
    pager.send(target=desk("webhook", f"http://pager.internal:{port}/hook?token=abc", "s"), event=EVENT)
    (request,) = fake_pager.requests
    assert request.path == "/hook?token=abc"
    assert request.headers["host"] == f"pager.internal:{port}"
    fake_pager.script(PagerFault(status=302))
    with pytest.raises(DeliveryError, match="302"):
        pager.send(target=desk("webhook", f"http://pager.internal:{port}/hook", "s"), event=EVENT)
    assert len(fake_pager.requests) == 1
    pager.close()


def test_the_pager_verifies_tls_with_the_one_shared_context(gateway: FakeGateway) -> None:
    """Every Pager shares one TLS context (loaded once a process); it still verifies: a webhook
    behind a certificate no public authority signed is refused, and nothing is sent."""
    pager = make_pager(timeout=2)
    try:
        with pytest.raises(DeliveryError) as refused:
            pager.send(target=desk("webhook", f"{gateway.url}/hooks/preflight", "hook-secret"), event=EVENT)
        assert "certificate" in str(refused.value).lower(), refused.value
        assert gateway.requests == []
        assert _certificates() is _certificates() and _certificates().verify_mode is ssl.CERT_REQUIRED
    finally:
        pager.close()
