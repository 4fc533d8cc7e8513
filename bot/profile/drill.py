"""The backup-device drill: the bot's own TOTP secret (pyotp) in the trader's backup
authenticator proves the trader can produce codes from that device. It is IB Preflight's own
entry, not IBKR's, so a pass says nothing about IBKR's Mobile Authenticator entry and never
marks an IBKR method verified (docs/broker-facts.md §8): it is its own fact,
``TotpEnrollment.last_success_at``.

- **Enrol**: a fresh secret, shown once in a DM (QR code and ``otpauth://`` URI), stored only
  encrypted (``bot.crypto.Keyring``: MultiFernet under the configured keys). Enrolment completes
  only when the trader enters a valid current code.
- **Codes**: 6 digits, 30-second steps (RFC 6238 §4 defaults; IBKR's own authenticator codes use
  the same "(30 seconds)" window, https://ibkrguides.com/securelogin/sls/mobile-auth-app-login.htm).
  A code is accepted within ±1 step of now (RFC 6238 §5.2 allows "one time step" of network delay)
  and only if its step is *after* the last accepted one: "the verifier MUST NOT accept the second
  attempt of the OTP after the successful validation has been issued for the first OTP" (§5.2).
- **Reuse**: a code of a step at or before the last accepted one (a resubmitted code, or the
  second of several simultaneous submits of one code) is refused as *replayed*: it proves the
  device as much as the first did, so it never counts toward the lockout.
- **Real time**: codes are checked against the real clock (``wall``), never the app's clock moved
  by ``PREFLIGHT_CLOCK_OFFSET``: the authenticator app on the trader's phone knows only real time.
- **Lockout**: 5 rejected codes within 15 minutes (since the last success) lock enrolment and drill
  for 15 minutes (RFC 4226 §7.3 throttling); the lock is recorded (audit event). Nothing here ever
  logs or stores a code or a secret in plain text.

This is never an IBKR secret or an IBKR code: the bot never asks for either.
"""

from __future__ import annotations

import hmac
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, col, func, select

from bot.audit import record
from bot.crypto import CryptoError, Keyring
from bot.errors import ServiceError
from bot.profile.gaps import sync_trader
from bot.profile.models import DrillAttempt, TotpEnrollment

ISSUER = "IB Preflight"
DIGITS = 6
STEP_SECONDS = 30
VALID_WINDOW = 1  # ±1 step
EXPIRED_LOOKBACK = 20  # steps before the window that are recognised as "too old" (10 minutes)
LOCK_AFTER = 5
LOCK_WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)


class Purpose(StrEnum):
    ENROLL = "enroll"
    DRILL = "drill"


class CodeOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    REPLAYED = "replayed"  # the code of a step at or before the last accepted one
    EXPIRED = "expired"  # a real code, but older than one step
    MALFORMED = "malformed"  # not 6 digits: a typo, not counted as a guess
    LOCKED = "locked"
    NOT_ENROLLED = "not_enrolled"


FAILURES = (CodeOutcome.WRONG, CodeOutcome.EXPIRED)  # what counts toward the lock (never a reused code)


@dataclass(frozen=True)
class CodeResult:
    outcome: CodeOutcome
    at: datetime
    locked_until: datetime | None = None
    tries_left: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is CodeOutcome.OK


@dataclass(frozen=True)
class NewEnrollment:
    """Held in memory only, long enough to show it to the trader once."""

    secret: str
    uri: str


class EnrollmentRefused(ServiceError):
    pass


NO_KEY = (
    "Enrolment needs the bot's secret key, which isn't set up yet: ask whoever runs IB Preflight to set it. "
    "Everything else works without it."
)
UNREADABLE = "Your drill secret can't be read with the bot's current keys: enrol your backup authenticator again."


# --- TOTP, pure ---------------------------------------------------------------------------


# pyotp and segno are imported when a drill needs them: not on the way to serving (start-up).


def new_secret() -> str:
    import pyotp

    return pyotp.random_base32()


def provisioning_uri(secret: str, account_name: str) -> str:
    """``otpauth://totp/IB%20Preflight:NAME?secret=...&issuer=IB%20Preflight``."""
    import pyotp

    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS, name=account_name, issuer=ISSUER).provisioning_uri()


def qr_png(uri: str) -> bytes:
    """The URI as a QR code PNG (segno)."""
    import segno

    buffer = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()


def normalize_code(code: str) -> str | None:
    """'123 456' -> '123456'; None unless it is exactly six digits."""
    digits = "".join(code.split())
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else None


def check_code(secret: str, code: str, *, now: datetime, last_step: int | None) -> tuple[CodeOutcome, int | None]:
    """(outcome, matched step). ``code`` must already be six digits."""
    import pyotp

    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now)

    def matches(step: int) -> bool:
        return hmac.compare_digest(code.encode(), totp.generate_otp(step).encode())

    in_window = [s for s in range(current - VALID_WINDOW, current + VALID_WINDOW + 1) if matches(s)]
    if in_window:
        fresh = [s for s in in_window if last_step is None or s > last_step]
        if fresh:
            return CodeOutcome.OK, max(fresh)
        return CodeOutcome.REPLAYED, max(in_window)
    lowest = current - VALID_WINDOW - EXPIRED_LOOKBACK
    for step in range(current - VALID_WINDOW - 1, lowest - 1, -1):
        if matches(step):
            return (CodeOutcome.REPLAYED if last_step is not None and step <= last_step else CodeOutcome.EXPIRED), step
    return CodeOutcome.WRONG, None


# --- stored state -----------------------------------------------------------------------------


def enrollment(session: Session, user_id: str) -> TotpEnrollment | None:
    return session.exec(select(TotpEnrollment).where(TotpEnrollment.user_id == user_id)).first()


def locked_until(row: TotpEnrollment | None, now: datetime) -> datetime | None:
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


def start_enrollment(
    *, session: Session, user_id: str, account_name: str, keys: Keyring, now: datetime
) -> NewEnrollment:
    """A fresh secret, stored encrypted as *pending* until the trader enters a valid code.
    Refused (EnrollmentRefused) without a key or while the drill is locked."""
    if not keys.configured:
        raise EnrollmentRefused(NO_KEY)
    row = enrollment(session, user_id)
    if (until := locked_until(row, now)) is not None:
        raise EnrollmentRefused(f"Too many wrong codes: enrolment and the drill are locked until {until:%H:%M} UTC.")
    secret = new_secret()
    try:
        token = keys.encrypt(secret)
    except CryptoError as exc:
        raise EnrollmentRefused(str(exc)) from None
    if row is None:
        row = TotpEnrollment(user_id=user_id)
    row.pending_secret = token
    row.pending_at = now
    session.add(row)
    session.flush()
    record(session, subject=f"drill:{user_id}", action="enrollment_started", at=now, actor=user_id)
    return NewEnrollment(secret=secret, uri=provisioning_uri(secret, account_name))


def submit_code(
    *,
    session: Session,
    user_id: str,
    code: str,
    purpose: Purpose,
    keys: Keyring,
    now: datetime,
    wall: datetime | None = None,
) -> CodeResult:
    """Check a code for enrolment (against the pending secret) or the drill (the active one),
    record the attempt (never the code), and lock after too many failures. A passed one is the
    drill's own fact (``TotpEnrollment.last_success_at``: the backup device produces IB Preflight's
    codes), never an IBKR method's verification, and closes the gaps it fixes (the recovery rule
    reads it apart, docs/broker-facts.md §8). ``now`` is the app's clock (what is recorded); ``wall`` the real
    time the code is checked against (default ``now``: they differ only under PREFLIGHT_CLOCK_OFFSET)."""
    result = _check_code(
        session=session, user_id=user_id, code=code, purpose=purpose, keys=keys, now=now, wall=wall or now
    )
    if result.ok:
        sync_trader(session=session, user_id=user_id, now=now)
    return result


def _check_code(
    *, session: Session, user_id: str, code: str, purpose: Purpose, keys: Keyring, now: datetime, wall: datetime
) -> CodeResult:
    """The code against the secret; the attempt recorded, the lock set after too many failures."""
    digits = normalize_code(code)
    if digits is None:
        return CodeResult(CodeOutcome.MALFORMED, now)
    row = session.exec(select(TotpEnrollment).where(TotpEnrollment.user_id == user_id).with_for_update()).first()
    token = None if row is None else (row.pending_secret if purpose is Purpose.ENROLL else row.secret)
    if row is None or token is None:
        return CodeResult(CodeOutcome.NOT_ENROLLED, now)
    if (until := locked_until(row, now)) is not None:
        session.add(DrillAttempt(user_id=user_id, at=now, purpose=purpose, outcome=CodeOutcome.LOCKED))
        return CodeResult(CodeOutcome.LOCKED, now, locked_until=until)
    try:
        secret = keys.decrypt(token)
    except CryptoError:
        raise ServiceError(UNREADABLE) from None
    # A new secret starts its own step sequence: replay protection is per secret.
    last_step = row.last_step if purpose is Purpose.DRILL else None
    outcome, step = check_code(secret, digits, now=wall, last_step=last_step)
    session.add(DrillAttempt(user_id=user_id, at=now, purpose=purpose, outcome=outcome))
    if outcome is CodeOutcome.OK:
        row.last_step = step
        row.last_success_at = now
        row.locked_until = None
        if purpose is Purpose.ENROLL:
            row.secret, row.pending_secret, row.pending_at, row.enrolled_at = token, None, None, now
            record(session, subject=f"drill:{user_id}", action="enrolled", at=now, actor=user_id)
        else:
            record(session, subject=f"drill:{user_id}", action="drill_passed", at=now, actor=user_id)
        session.add(row)
        session.flush()
        return CodeResult(CodeOutcome.OK, now)
    session.flush()
    if outcome not in FAILURES:  # a reused code: refused, never a guess toward the lock
        return CodeResult(outcome, now)
    since = now - LOCK_WINDOW
    if row.last_success_at is not None and row.last_success_at > since:
        since = row.last_success_at
    failures = session.exec(
        select(func.count(col(DrillAttempt.id))).where(
            DrillAttempt.user_id == user_id,
            col(DrillAttempt.outcome).in_([f.value for f in FAILURES]),
            col(DrillAttempt.at) > since,
        )
    ).one()
    if failures >= LOCK_AFTER:
        row.locked_until = now + LOCK_FOR
        session.add(row)
        record(
            session,
            subject=f"drill:{user_id}",
            action="drill_locked",
            at=now,
            actor=user_id,
            failures=failures,
            until=row.locked_until.isoformat(),
        )
        return CodeResult(outcome, now, locked_until=row.locked_until, tries_left=0)
    return CodeResult(outcome, now, tries_left=LOCK_AFTER - failures)


def rotate_secrets(*, session: Session, keys: Keyring) -> int:
    """Re-encrypt every stored drill secret under the first key (``preflight keys rotate``).
    Returns how many values were re-encrypted; UndecryptableError if one can't be read."""
    count = 0
    for row in session.exec(select(TotpEnrollment).order_by(col(TotpEnrollment.id))).all():
        changed = False
        if row.secret:
            row.secret = keys.rotate(row.secret)
            count += 1
            changed = True
        if row.pending_secret:
            row.pending_secret = keys.rotate(row.pending_secret)
            count += 1
            changed = True
        if changed:
            session.add(row)
    session.flush()
    return count
