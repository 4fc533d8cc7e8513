"""User text, made harmless at every surface (shared ground: no Slack, no capability).

``clean`` removes characters that reorder or hide text: bidirectional overrides and
isolates (U+202A-U+202E, U+2066-U+2069) and zero-width characters (U+200B-U+200F,
U+2060-U+2064, U+FEFF), so a note cannot read differently than it is stored. Slack's own
escaping of ``&``, ``<`` and ``>`` for mrkdwn is ``bot.slack.blocks.escape``; spreadsheet
formulas in exports are neutralised by ``bot.summary.export``.
"""

from __future__ import annotations

_INVISIBLE = dict.fromkeys(
    [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), *range(0x2066, 0x206A), 0xFEFF]
)


def clean(text: str) -> str:
    """``text`` without bidirectional-override and zero-width characters."""
    return text.translate(_INVISIBLE)
