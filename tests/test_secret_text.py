"""The secret filter reads context: codes and passwords refused, trading text accepted (issue 17).

One table each way, and ``bot.text.user_text`` (the one gate for every free-text input):
length, invisible and control characters, and the secret check, each naming the field.
"""

from __future__ import annotations

import pytest

from bot.errors import ServiceError
from bot.secret_text import REFUSAL, looks_like_secret
from bot.text import text_error, user_text

REFUSED = [
    "password: hunter2",
    "Password = letmein9",
    "my pwd is Tr0ub4dor&3",
    "pwd hunter2",
    "passcode: 1234",
    "backup code 483920",
    "bot code 93817265",
    "483920",
    "IB Key gave 1234567 then failed",
    "code:483920",
]

ACCEPTED = [
    "",
    "1000000 shares",
    "buy 1000000 shares of SPY",
    "order size 250000",
    "qty 100000",
    "quantity: 2500000",
    "500000 USD",
    "USD 500000",
    "$250000 notional",
    "2,000,000 notional",
    "1000000 contracts? no, 100 lots",
    "account U1234567",
    "paper account DU1234567",
    "advisor master F1234567 and I7654321",
    "2026-11-25",
    "20261125",
    "09:30:00",
    "ES 4512.25",
    "ES at 123456.75",
    "password reset worked",
    "a temporary passcode from IBKR",
    "100 lots",
    "Phone lost, on the phone with IBKR support",
]


@pytest.mark.parametrize("text", REFUSED)
def test_refused(text: str) -> None:
    assert looks_like_secret(text), text


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted(text: str) -> None:
    assert not looks_like_secret(text), text


def test_context_does_not_hide_a_code_beside_it() -> None:
    assert looks_like_secret("U1234567 code 483920")
    assert looks_like_secret("1000000 shares, code 483920")
    assert looks_like_secret("19991340")  # not a real date: a code


def test_user_text_cleans_and_refuses_with_the_field() -> None:
    assert user_text(None, field="note", limit=10) is None
    assert user_text("  \u202e \u200b ", field="note", limit=10) is None
    assert user_text(" a\tb\x00c\n d ", field="note", limit=20) == "a b c d"
    assert user_text("a\n\n\n\nb\x07", field="note", limit=20, multiline=True) == "a\n\nb"
    with pytest.raises(ServiceError) as long:
        user_text("x" * 11, field="name", limit=10, what="name")
    assert long.value.field == "name" and str(long.value) == "Keep the name to 10 characters (it has 11)."
    with pytest.raises(ServiceError) as secret:
        user_text("password: hunter2", field="note", limit=100)
    assert secret.value.field == "note" and str(secret.value) == REFUSAL
    assert text_error("backup code 483920", limit=100) == REFUSAL
    assert text_error("1000000 shares on U1234567", limit=100) is None
