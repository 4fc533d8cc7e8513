"""Free text that looks like a credential: refused before anything is stored.

The bot never needs an IBKR password or one-time code, and promises never to store or show
one (README). Notes and permission lists are free text, so they are checked here:

- a one-time code: a standalone group of 6 to 8 digits (IB Key, authenticator (TOTP) and
  SMS codes are 6-8 digits; "123456" but not "2026-11-25", "ES 4512.25" or "100 lots");
- a password: "password", "passcode", "passwd", "pass word" or "pwd" followed by a value —
  after ":", "=", "is" or "was", or a value that has a digit or a symbol in it ("pwd hunter2").
  Words after it ("password reset worked", "a temporary passcode from IBKR") pass.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"(?<![\d.,])\d{6,8}(?![\d]|[.,]\d)")
_KEYWORD = re.compile(r"\b(?:pass\s?words?|passcodes?|passwd|pwd)\b", re.IGNORECASE)
_STATED = re.compile(r"\s*(?::|=|\bis\b|\bwas\b)\s*[^\s.,;!?]", re.IGNORECASE)  # "password: x", "pwd is x"
_NEXT = re.compile(r"\s+(\S+)")
_TRAILING = ".,;:!?)]}\"'"

REFUSAL = (
    "This looks like a password or a one-time code. The bot never needs them: remove it "
    "(nothing was stored), and if it was real, change it."
)


def looks_like_secret(text: str | None) -> bool:
    """True when ``text`` seems to carry a one-time code or a password."""
    if not text:
        return False
    if _CODE.search(text):
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
