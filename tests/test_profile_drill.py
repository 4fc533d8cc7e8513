"""The backup-device drill: enrolment (QR code and otpauth URI in a DM; done only with a valid
code), the drill's correct / wrong / replayed / too-old codes, the lockout and its expiry,
secrets at rest (encrypted, rotated with the key list, never in plain text in the database
or the logs). Signed requests into the real app, the fake Slack, both databases."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from bot.audit import AuditEvent
from bot.crypto import Keyring
from bot.db import session_scope
from bot.errors import ServiceError
from bot.profile import drill
from bot.profile.drill import CodeOutcome, Purpose
from bot.profile.models import DrillAttempt, SecondFactorRecord, TotpEnrollment
from bot.slack.ids import ProfileAction, ProfileBlock, ProfileCallback
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, FakeClock, utc
from tests.support.profile_fixtures import (
    KEY,
    audit_actions,
    code,
    code_values,
    dm_texts,
    enroll,
    ephemerals,
    errors_of,
    factors_values,
    finish_enrollment,
    home_text,
    keyed_bot,  # noqa: F401 - a fixture
    keyless_bot,  # noqa: F401 - a fixture
    open_home,
    opened_views,
    submit,
)


def enrollment_row(engine: Engine, who: str = "UTRD1") -> TotpEnrollment:
    with Session(engine) as session:
        row = session.exec(select(TotpEnrollment).where(TotpEnrollment.user_id == who)).first()
    assert row is not None
    return row


def wrong_code(secret: str, bot: Bot) -> str:
    used = {pyotp.TOTP(secret).at(bot.clock(), counter_offset=o) for o in range(-30, 3)}
    return next(c for c in ("000000", "123456", "999999", "424242") if c not in used)


def test_enrollment_with_a_wrong_then_a_right_code(keyed_bot: Bot, fake_slack: FakeSlack) -> None:  # noqa: F811
    bot = keyed_bot
    engine = bot.runtime.engine
    make_desk(engine)
    secret = enroll(bot, fake_slack)
    # The QR code went to the trader's DM as a PNG (getUploadURLExternal -> upload -> complete).
    (get_url,) = fake_slack.of("files.getUploadURLExternal")
    (completed,) = fake_slack.of("files.completeUploadExternal")
    assert completed.params["channel_id"] == "DTRD1"
    assert "QR code" in get_url.params["alt_txt"]
    file_id = completed.params["files"][0]["id"]
    assert fake_slack.uploads[file_id].startswith(b"\x89PNG\r\n\x1a\n")
    (message,) = dm_texts(fake_slack, "DTRD1")
    assert "otpauth://totp/IB%20Preflight:utrd1?secret=" in message and "issuer=IB%20Preflight" in message
    assert "never asks for your IBKR password or an IBKR one-time code" in message
    # Nothing about it went anywhere but the DM.
    assert all(secret not in str(c.params) for c in fake_slack.calls if c.params.get("channel") != "DTRD1")
    pending = enrollment_row(engine)
    assert pending.pending_secret is not None and pending.secret is None and pending.enrolled_at is None
    assert secret not in pending.pending_secret

    bot.click("UTRD1", ProfileAction.ENTER_ENROLL_CODE, "")
    bot.settle()
    assert opened_views(fake_slack)[-1]["callback_id"] == ProfileCallback.ENROLL
    errors = errors_of(submit(bot, "UTRD1", ProfileCallback.ENROLL, code_values(wrong_code(secret, bot))))
    assert "isn't right" in errors[ProfileBlock.CODE]
    assert enrollment_row(engine).enrolled_at is None
    assert submit(bot, "UTRD1", ProfileCallback.ENROLL, code_values(code(secret, bot))) == {}
    done = enrollment_row(engine)
    assert done.secret is not None and done.pending_secret is None and done.enrolled_at == bot.clock()
    assert "Enrolled" in dm_texts(fake_slack, "UTRD1")[-1]
    assert [a for a, _ in audit_actions(engine, "drill:UTRD1")] == ["enrollment_started", "enrolled"]
    assert "enrolled Wed 25 Nov 2026" in home_text(fake_slack, "UTRD1")


def test_drill_with_correct_wrong_replayed_and_too_old_codes(keyed_bot: Bot, fake_slack: FakeSlack) -> None:  # noqa: F811
    bot = keyed_bot
    engine = bot.runtime.engine
    make_desk(engine)
    submit(bot, "UTRD1", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key", "authenticator_app"]))
    secret = finish_enrollment(bot, fake_slack)
    bot.clock.advance(minutes=5)

    bot.click("UTRD1", ProfileAction.RUN_DRILL, "")
    bot.settle()
    drill_view = opened_views(fake_slack)[-1]
    assert drill_view["callback_id"] == ProfileCallback.DRILL
    assert "IB Preflight never asks for your IBKR password" in str(drill_view["blocks"])

    def attempt(value: str) -> str | None:
        body = submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(value))
        return errors_of(body)[ProfileBlock.CODE] if body else None

    assert "isn't right" in (attempt(wrong_code(secret, bot)) or "")
    assert "expired" in (attempt(code(secret, bot, steps=-3)) or "")
    assert "Enter the 6 digits" in (attempt("12 34") or "")  # a typo: not counted
    current = code(secret, bot)
    assert attempt(current) is None
    with Session(engine) as session:
        record = session.exec(select(SecondFactorRecord).where(SecondFactorRecord.method == "authenticator_app")).one()
    # The drill is its own fact: it proves the backup device produces IB Preflight's codes, not
    # that IBKR's Mobile Authenticator entry is active, so the IBKR method is not marked verified.
    assert (record.last_verified_at, record.verified_by) == (None, None)
    assert enrollment_row(engine).last_success_at == bot.clock()
    passed = dm_texts(fake_slack, "UTRD1")[-1]
    assert "Drill passed" in passed and "you can produce codes from your backup device" in passed
    assert "recovery path ok (backup device drilled)" in home_text(fake_slack, "UTRD1")
    assert "already used" in (attempt(current) or "")  # RFC 6238 §5.2: no second use
    assert "already used" in (attempt(code(secret, bot, steps=-1)) or "")  # nor an earlier step
    bot.clock.advance(seconds=30)
    assert attempt(code(secret, bot)) is None  # the next step's code works
    with Session(engine) as session:
        outcomes = [a.outcome for a in session.exec(select(DrillAttempt).order_by(col(DrillAttempt.id))).all()]
    assert outcomes == ["ok", "wrong", "expired", "ok", "replayed", "replayed", "ok"]  # enrolment first


def test_lockout_after_five_wrong_codes_and_its_expiry(keyed_bot: Bot, fake_slack: FakeSlack) -> None:  # noqa: F811
    bot = keyed_bot
    engine = bot.runtime.engine
    make_desk(engine)
    secret = finish_enrollment(bot, fake_slack)
    wrong = wrong_code(secret, bot)
    messages = []
    for _ in range(5):
        bot.clock.advance(seconds=20)
        messages.append(errors_of(submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(wrong)))[ProfileBlock.CODE])
    assert "1 more wrong code(s) lock the drill" in messages[3]
    assert "locked until" in messages[4]
    locked_at = bot.clock()
    assert enrollment_row(engine).locked_until == locked_at + timedelta(minutes=15)
    assert audit_actions(engine, "drill:UTRD1")[-1] == ("drill_locked", "UTRD1")

    # Locked: even the right code is refused, and the button says so.
    bot.clock.advance(minutes=14, seconds=50)
    assert (
        "locked"
        in errors_of(submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(code(secret, bot))))[ProfileBlock.CODE]
    )
    views_before = len(opened_views(fake_slack))
    bot.click("UTRD1", ProfileAction.RUN_DRILL, "")
    bot.settle()
    assert len(opened_views(fake_slack)) == views_before
    assert "locked until" in ephemerals(fake_slack, "UTRD1")[-1]

    # 15 minutes after the lock: the drill works again.
    bot.clock.set(locked_at + timedelta(minutes=15))
    assert submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(code(secret, bot))) == {}
    assert enrollment_row(engine).last_success_at == bot.clock()


def test_enrollment_without_a_key_is_refused_and_the_rest_works(keyless_bot: Bot, fake_slack: FakeSlack) -> None:  # noqa: F811
    bot = keyless_bot
    engine = bot.runtime.engine
    make_desk(engine)
    assert bot.click("UTRD1", ProfileAction.ENROLL, "").status_code == 200
    bot.settle()
    assert "needs the bot's secret key" in ephemerals(fake_slack, "UTRD1")[-1]
    assert fake_slack.of("files.getUploadURLExternal") == []
    with Session(engine) as session:
        assert session.exec(select(TotpEnrollment)).all() == []
    open_home(bot, "UTRD1")
    assert "Enrolment is unavailable" in home_text(fake_slack, "UTRD1")
    assert ProfileAction.ENROLL.value not in home_text(fake_slack, "UTRD1")


def test_key_rotation_keeps_secrets_readable_and_a_wrong_key_reads_none(engine: Engine) -> None:
    make_desk(engine)
    clock = FakeClock(utc(2026, 11, 25, 13, 5))
    old, new, stranger = Keyring(["key-A"]), Keyring(["key-B", "key-A"]), Keyring(["key-C"])
    with session_scope(engine) as session:
        started = drill.start_enrollment(session=session, user_id="UTRD1", account_name="a", keys=old, now=clock())
        result = drill.submit_code(
            session=session,
            user_id="UTRD1",
            code=pyotp.TOTP(started.secret).at(clock()),
            purpose=Purpose.ENROLL,
            keys=old,
            now=clock(),
        )
    assert result.ok
    before = enrollment_row(engine).secret
    assert before is not None and new.decrypt(before) == started.secret  # old ciphertexts read under the new list
    with session_scope(engine) as session:
        assert drill.rotate_secrets(session=session, keys=new) == 1
    after = enrollment_row(engine).secret
    assert after is not None and after != before
    assert Keyring(["key-B"]).decrypt(after) == started.secret  # the old key can now be dropped
    assert not Keyring(["key-B"]).readable(before)
    clock.advance(seconds=60)
    with session_scope(engine) as session:
        assert drill.submit_code(
            session=session,
            user_id="UTRD1",
            code=pyotp.TOTP(started.secret).at(clock()),
            purpose=Purpose.DRILL,
            keys=Keyring(["key-B"]),
            now=clock(),
        ).ok
    clock.advance(seconds=60)
    with (
        pytest.raises(ServiceError, match="can't be read with the bot's current keys"),
        session_scope(engine) as session,
    ):
        drill.submit_code(
            session=session,
            user_id="UTRD1",
            code=pyotp.TOTP(started.secret).at(clock()),
            purpose=Purpose.DRILL,
            keys=stranger,
            now=clock(),
        )
    with session_scope(engine) as session:
        with pytest.raises(Exception, match="can't be decrypted"):
            drill.rotate_secrets(session=session, keys=stranger)
        session.rollback()
    assert enrollment_row(engine).secret == after  # a failed rotation changed nothing


def dump(engine: Engine) -> str:
    """Every row of every table, as text."""
    lines = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(sa_select(table)).all():
                lines.append(f"{table.name}: {tuple(row)}")
    return "\n".join(lines)


def test_no_totp_secret_or_code_in_plain_text_in_the_database_or_the_logs(
    keyed_bot: Bot,  # noqa: F811
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = keyed_bot
    engine = bot.runtime.engine
    make_desk(engine)
    secret = enroll(bot, fake_slack)
    codes = [code(secret, bot)]
    assert submit(bot, "UTRD1", ProfileCallback.ENROLL, code_values(codes[0])) == {}
    bot.clock.advance(seconds=30)
    codes.append(code(secret, bot))
    assert submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(codes[1])) == {}
    # Re-enrol: a second secret, pending.
    second = enroll(bot, fake_slack)
    text = dump(engine)
    assert "totp_enrollment" in text and "drill_attempt" in text  # the dump saw the rows
    for value in (secret, second, secret.lower(), *codes):
        assert value not in text
    assert Keyring(KEY).decrypt(enrollment_row(engine).secret or "") == secret
    logged = caplog.text
    # Slack calls are logged with their bodies at DEBUG (slack_sdk), just not the ones carrying the secret.
    assert "Sending a request" in logged and "views.publish" in logged
    for value in (secret, second, *codes):
        assert value not in logged
    with Session(engine) as session:
        details = " ".join(e.detail for e in session.exec(select(AuditEvent)).all())
    assert all(value not in details for value in (secret, second, *codes))


def test_a_drill_needs_a_finished_enrollment(engine: Engine) -> None:
    """A pending enrolment (no valid code yet) is nothing to drill against."""
    clock = FakeClock(utc(2026, 11, 25, 13, 5))
    keys = Keyring(["k"])
    with session_scope(engine) as session:
        started = drill.start_enrollment(session=session, user_id="UX", account_name="x", keys=keys, now=clock())
        result = drill.submit_code(
            session=session, user_id="UX", code="000000", purpose=Purpose.DRILL, keys=keys, now=clock()
        )
    assert result.outcome is CodeOutcome.NOT_ENROLLED  # only pending: nothing to drill against yet
    assert started.secret not in str(result)


def test_an_evening_drill_shows_and_saves_as_the_desks_date(keyed_bot: Bot, fake_slack: FakeSlack) -> None:  # noqa: F811
    """21:30 in New York is already tomorrow in UTC: saving New York's date is not "in the future";
    the drill before it left the IBKR method alone (its own fact), the declared date is stored."""
    bot = keyed_bot
    make_desk(bot.runtime.engine)
    submit(bot, "UTRD1", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key", "authenticator_app"]))
    secret = finish_enrollment(bot, fake_slack)
    bot.clock.set(utc(2026, 11, 26, 2, 30))  # Wed 25 Nov, 21:30 EST
    assert submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(code(secret, bot))) == {}
    bot.click("UTRD1", ProfileAction.EDIT_FACTORS, "")
    bot.settle()
    modal = opened_views(fake_slack)[-1]
    picker = next(b for b in modal["blocks"] if b.get("block_id") == "verified_authenticator_app")
    assert "initial_date" not in picker["element"]
    values = factors_values("ib_key", ["ib_key", "authenticator_app"], {"authenticator_app": date(2026, 11, 25)})
    assert submit(bot, "UTRD1", ProfileCallback.FACTORS, values) == {}
    with Session(bot.runtime.engine) as session:
        record = session.exec(select(SecondFactorRecord).where(SecondFactorRecord.method == "authenticator_app")).one()
    assert (record.last_verified_at, record.verified_by) == (utc(2026, 11, 25, 5, 0), "declared")


REUSED = "That code was already used. Wait for the next one."


def test_a_reused_code_is_refused_and_never_locks_the_drill(keyed_bot: Bot, fake_slack: FakeSlack) -> None:  # noqa: F811
    """Resubmitting an accepted code (a double click, a retry) proves the device as much as the
    first submit did: refused with its own sentence, never a step toward the lock."""
    bot = keyed_bot
    make_desk(bot.runtime.engine)
    secret = finish_enrollment(bot, fake_slack)
    current = code(secret, bot)
    assert submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(current)) == {}
    for _ in range(7):
        assert errors_of(submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(current))) == {
            ProfileBlock.CODE: REUSED
        }
    assert enrollment_row(bot.runtime.engine).locked_until is None
    bot.clock.advance(seconds=30)
    assert submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(code(secret, bot))) == {}


def test_six_simultaneous_submits_of_one_code_pass_once_and_lock_nothing(
    keyed_bot: Bot,  # noqa: F811
    fake_slack: FakeSlack,
) -> None:
    bot = keyed_bot
    make_desk(bot.runtime.engine)
    secret = finish_enrollment(bot, fake_slack)
    current = code(secret, bot)
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(
            pool.map(lambda _: bot.submit_view("UTRD1", ProfileCallback.DRILL, code_values(current)), range(6))
        )
    bot.settle()
    assert all(r.status_code == 200 for r in responses)
    bodies = [r.json() if r.content else {} for r in responses]
    assert bodies.count({}) == 1
    assert sorted(errors_of(b).get(ProfileBlock.CODE, "") for b in bodies if b) == [REUSED] * 5
    assert enrollment_row(bot.runtime.engine).locked_until is None


@pytest.fixture
def offset_keyed_bot(engine: Engine, fake_slack: FakeSlack) -> Iterator[Bot]:
    running = Bot(engine, fake_slack.base_url, None, secret_keys=(KEY,), clock_offset=7 * 24 * 3600)
    yield running
    running.close()


def test_codes_are_checked_against_the_real_clock_during_a_rehearsal(
    offset_keyed_bot: Bot, fake_slack: FakeSlack
) -> None:
    """PREFLIGHT_CLOCK_OFFSET moves the app's clock a week; the phone's authenticator app shows
    codes of the real time, and those are the ones that pass."""
    bot = offset_keyed_bot
    make_desk(bot.runtime.engine)
    secret = enroll(bot, fake_slack)
    shifted = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(days=7))
    assert (
        "isn't right"
        in errors_of(submit(bot, "UTRD1", ProfileCallback.ENROLL, code_values(shifted)))[ProfileBlock.CODE]
    )
    assert submit(bot, "UTRD1", ProfileCallback.ENROLL, code_values(pyotp.TOTP(secret).now())) == {}
    following = pyotp.TOTP(secret).at(datetime.now(UTC), counter_offset=1)  # a later step: fresh
    assert submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(following)) == {}
