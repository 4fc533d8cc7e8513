"""User text, made harmless at every surface (shared ground: no Slack, no capability).

``user_text`` is the one gate for every free-text input (notes, permission lists, automation
names, away notes, resolve notes): it removes invisible characters, turns control characters
into spaces (keeping line breaks only where ``multiline``), checks the length, and refuses
what looks like a password or a one-time code (``bot.secret_text``). Each refusal is a
``ServiceError`` naming the field, so a modal shows it under the right block and the CLI
prints one line.

``clean`` removes characters that reorder or hide text: bidirectional overrides and
isolates (U+202A-U+202E, U+2066-U+2069) and zero-width characters (U+200B-U+200F,
U+2060-U+2064, U+FEFF), so a note cannot read differently than it is stored. Slack's own
escaping of ``&``, ``<`` and ``>`` for mrkdwn is ``bot.slack.blocks.escape``; spreadsheet
formulas in exports are neutralised by ``bot.summary.export``.
"""

from __future__ import annotations

import unicodedata

from bot.errors import ServiceError
from bot.secret_text import REFUSAL, looks_like_secret

_INVISIBLE = dict.fromkeys(
    [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), *range(0x2066, 0x206A), 0xFEFF]
)


def clean(text: str) -> str:
    """``text`` without bidirectional-override and zero-width characters."""
    return text.translate(_INVISIBLE)


def _controls_to_spaces(text: str, *, multiline: bool) -> str:
    out = []
    for ch in text:
        if multiline and ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch) in {"Cc", "Zl", "Zp"}:
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def text_error(value: str | None, *, limit: int, what: str = "note", multiline: bool = False) -> str | None:
    """Why ``value`` can't be stored (a sentence), or None when it can."""
    try:
        user_text(value, field="", limit=limit, what=what, multiline=multiline)
    except ServiceError as error:
        return str(error)
    return None


def user_text(value: str | None, *, field: str, limit: int, what: str = "note", multiline: bool = False) -> str | None:
    """``value`` as it will be stored: invisible characters removed, control characters made
    spaces, runs of spaces (and, unless ``multiline``, line breaks) collapsed, trimmed; None
    when nothing is left. Raises ``ServiceError(field=field)`` when it is longer than
    ``limit`` characters or looks like a password or a one-time code."""
    if value is None:
        return None
    text = _controls_to_spaces(clean(value), multiline=multiline)
    if multiline:
        lines = [" ".join(line.split()) for line in text.split("\n")]
        text = "\n".join(lines).strip()
        while "\n\n\n" in text:
            text = text.replace("\n\n\n", "\n\n")
    else:
        text = " ".join(text.split())
    if not text:
        return None
    if len(text) > limit:
        raise ServiceError(f"Keep the {what} to {limit} characters (it has {len(text)}).", field=field or None)
    if looks_like_secret(text):
        raise ServiceError(REFUSAL, field=field or None)
    return text
