"""Free text that looks like a credential: refused before anything is stored.

The bot never needs an IBKR password or one-time code, and promises never to store or show
one (README). Every free-text input goes through ``bot.text.user_text``, which asks here:

- a one-time code: a standalone group of 6 to 8 digits (IB Key, authenticator (TOTP) and
  SMS codes are 6-8 digits; "123456" but not "2026-11-25", "ES 4512.25" or "100 lots");
- a password: "password", "passcode", "passwd", "pass word" or "pwd" followed by a value —
  after ":", "=", "is" or "was", or a value that has a digit or a symbol in it ("pwd hunter2").
  Words after it ("password reset worked", "a temporary passcode from IBKR") pass.

Ordinary trading text is read in context first, and what is plainly not a code is set aside
before the digits are counted:

- IBKR account ids: ``U1234567`` (an account), ``DU1234567`` (its paper-trading twin), and
  ``F…`` / ``I…`` / ``DF…`` / ``DI…``, the prefixes seen on advisor and introducing-broker
  master accounts (not confirmed in IBKR's published guides: accepted as account-shaped);
- quantities with a unit or a word that names one: "1000000 shares", "500000 USD",
  "USD 500000", "$250000", "qty 100000", "order size 200000", "2,000,000 notional";
- dates written as digits (``20261125`` when it is a real date) — times and prices already
  carry ":" or "." and were never counted.
"""

from __future__ import annotations

import re
from datetime import date

_CODE = re.compile(r"(?<![\d.,])\d{6,8}(?![\d]|[.,]\d)")
_KEYWORD = re.compile(r"\b(?:pass\s?words?|passcodes?|passwd|pwd)\b", re.IGNORECASE)
_STATED = re.compile(r"\s*(?::|=|\bis\b|\bwas\b)\s*[^\s.,;!?]", re.IGNORECASE)  # "password: x", "pwd is x"
_NEXT = re.compile(r"\s+(\S+)")
_TRAILING = ".,;:!?)]}\"'"

_NUMBER = r"\d[\d,_']*(?:\.\d+)?"
_UNIT = (
    r"(?:shares?|shs?|sh|contracts?|cts?|lots?|units?|notional|nominal|qty|quantity|"
    r"USD|EUR|GBP|JPY|CHF|CAD|AUD|HKD|SGD|CNH|dollars?|euros?|bps|ticks?|k|m|mm|bn)"
)
_CURRENCY_SIGN = r"[$€£¥]"
_QUANTITY_WORD = r"(?:qty|quantity|size|order\s+size|order\s+of|position(?:\s+of)?|notional(?:\s+of)?|limit(?:\s+of)?)"
_ACCOUNT = re.compile(r"\b(?:D?[UFI])\d{5,9}\b")  # IBKR account ids: U…, DU… (paper), F…/I… masters
_SET_ASIDE = [
    _ACCOUNT,
    re.compile(rf"{_NUMBER}\s*{_UNIT}\b", re.IGNORECASE),  # 1000000 shares, 500000 USD, 2,000,000 notional
    re.compile(rf"\b(?:USD|EUR|GBP|JPY|CHF|CAD|AUD|HKD|SGD)\s*{_NUMBER}", re.IGNORECASE),  # USD 500000
    re.compile(rf"{_CURRENCY_SIGN}\s*{_NUMBER}"),  # $250000
    re.compile(rf"\b{_QUANTITY_WORD}\s*[:=]?\s*{_NUMBER}", re.IGNORECASE),  # qty 100000, order size: 200000
]

REFUSAL = (
    "This looks like a password or a one-time code. The bot never needs them: remove it "
    "(nothing was stored), and if it was real, change it."
)


def _is_date(digits: str) -> bool:
    if len(digits) != 8:
        return False
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return False
    return 1990 <= day.year <= 2100


def _set_aside(text: str) -> str:
    for pattern in _SET_ASIDE:
        text = pattern.sub(" ", text)
    return text


def looks_like_secret(text: str | None) -> bool:
    """True when ``text`` seems to carry a one-time code or a password."""
    if not text:
        return False
    if any(not _is_date(m.group()) for m in _CODE.finditer(_set_aside(text))):
        return True
    for keyword in _KEYWORD.finditer(text):
        rest = text[keyword.end() :]
        if _STATED.match(rest):
            return True
        following = _NEXT.match(rest)
        value = following.group(1).rstrip(_TRAILING) if following else ""
        if value and not value.isalpha():  # "pwd hunter2", "password Tr0ub4dor&3"
            return True
    return False
