"""Shared Block Kit helpers: text objects, simple blocks, form elements, desk-local times, and
fitting long lists into Slack's limits. Pure functions; every view builder uses these.

One truncation rule: text Slack limits is cut to the documented limit (cited beside each
constant below) with ``cut``, which ends a cut text with "…"; never sliced. Values and ids
(``value``, ``action_id``, ``block_id``) are never cut: they come back in payloads and a cut
one would name something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from bot import calendar
from bot.desks.models import Desk
from bot.slack.ids import FIELD
from bot.text import clean

Blocks = list[dict[str, Any]]
E = TypeVar("E", bound=StrEnum)


def escape(text: str | None) -> str:
    """User text made inert for ``mrkdwn``: Slack's three control characters escaped as Slack
    documents (``&`` ``<`` ``>`` -> ``&amp;`` ``&lt;`` ``&gt;``), so ``<!channel>``, ``<@U…>``,
    ``<!subteam^…>`` and ``<url|label>`` show as text and notify nobody; invisible characters
    removed. https://api.slack.com/reference/surfaces/formatting#escaping
    Every piece of user-written text placed in mrkdwn goes through this helper.

    Slack has no escape for its formatting marks, so ``*`` (bold), ``~`` (strike) and `` ` ``
    (code) become look-alikes (∗ ∼ ˋ): a display name like ``*CEO*`` can't turn the
    surrounding text bold or close the bot's own ``*…*``. (``_`` is kept: names like
    ``j_smith`` are common and italics hide nothing.)"""
    if not text:
        return ""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").translate(_MARKS)


_MARKS = str.maketrans({"*": "\u2217", "~": "\u223c", "`": "\u02cb"})


def md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def plain(text: str) -> dict[str, Any]:
    """Plain text (never parsed for mentions or markup), without invisible characters."""
    return {"type": "plain_text", "text": clean(text), "emoji": True}


def section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": md(text)}
    if block_id:
        block["block_id"] = block_id
    return block


def context_block(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [md(text)]}


def local_time(at: datetime, desk: Desk) -> str:
    """'09:00 EST' in the desk's zone."""
    return at.astimezone(calendar.zone(desk.timezone)).strftime("%H:%M %Z")


def local_datetime(at: datetime, desk: Desk) -> str:
    return at.astimezone(calendar.zone(desk.timezone)).strftime("%a %d %b %H:%M %Z")


# --- Slack's limits, and fitting long lists into them ---------------------------------------
# https://api.slack.com/reference/block-kit/blocks : "up to 50 blocks in each message, and 100
# blocks in modals or Home tabs".
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
# https://api.slack.com/reference/block-kit/blocks#section : section text at most 3,000 characters.
SECTION_TEXT = 3000
# https://api.slack.com/reference/block-kit/blocks#header : header text at most 150 characters.
HEADER_TEXT = 150
# https://api.slack.com/reference/block-kit/block-elements#button : button text at most 75.
BUTTON_TEXT = 75
# https://api.slack.com/reference/block-kit/composition-objects#option : option text at most 75.
OPTION_TEXT = 75
# https://api.slack.com/reference/block-kit/blocks#input : label and hint at most 2,000 each.
INPUT_TEXT = 2000
# https://api.slack.com/reference/surfaces/views : title, submit and close at most 24 characters.
VIEW_TITLE = 24
# https://api.slack.com/reference/surfaces/views : private_metadata at most 3,000 characters.
PRIVATE_METADATA = 3000
# https://api.slack.com/methods/chat.postMessage#truncating : text beyond 40,000 is truncated.
MESSAGE_TEXT = 40000
# Not documented: Slack refuses a message whose blocks carry more than about 12,000-13,000
# characters of text in all (``msg_blocks_too_long``, reported by users). Builders keep a
# message's block text under this budget.
MESSAGE_CHARS = 11000
# What a section built here may hold: ``SECTION_TEXT`` less room for a closing line (the
# "…and N more" of ``pack``).
SECTION_BUDGET = 2900


def text_size(blocks: Any) -> int:
    """Characters of text in blocks: every text object, raw_text cell and rich-text run."""
    total = 0

    def walk(node: Any) -> None:
        nonlocal total
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn", "raw_text", "text") and isinstance(node.get("text"), str):
                total += len(node["text"])
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return total


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


class Group:
    """A list to show under a heading, most important items first; what doesn't fit is
    summarised by ``more(n)`` (e.g. "…and 812 more ready")."""

    def __init__(self, heading: str, items: Sequence[str], more: str, *, inline: bool = False) -> None:
        self.heading = heading
        self.items = items  # may be lazy (drawn as iterated): ``pack`` reads only what fits, and len()
        self.more = more  # "{n} more ready"
        self.inline = inline  # items joined with ", " instead of one per line


class Packed(list[str]):
    """Section texts, and how many items were left out (summarised as "…and N more")."""

    hidden: int = 0


def pack(groups: list[Group], *, chars: int, sections: int) -> Packed:
    """Section texts (each within ``SECTION_BUDGET``) showing ``groups`` in order within
    ``chars`` characters and at most ``sections`` sections (at least one per non-empty group):
    each group's heading always, then as many items as fit, then "…and N more". Earlier groups
    are served first; items must be short (cut them to a few hundred characters)."""
    texts = Packed()
    used = 0
    live = [g for g in groups if g.items]
    for i, group in enumerate(live):
        later = len(live) - i - 1
        reserve = 80 * later  # the headings and summaries of the groups still to come
        tail = len(group.more) + 20
        current = group.heading
        shown = 0
        sep = ", " if group.inline else "\n"
        for item in group.items:
            piece = ((sep if shown else "\n") if current else "") + item
            if used + len(current) + len(piece) + tail + reserve > chars:
                break
            if len(current) + len(piece) + tail > SECTION_BUDGET:
                if len(texts) + 2 + later > sections:
                    break
                texts.append(current)
                used += len(current)
                current, piece = "", item
            current += piece
            shown += 1
        hidden = len(group.items) - shown
        if hidden:
            texts.hidden += hidden
            current += ("\n" if current else "") + "…and " + group.more.format(n=hidden)
        texts.append(current)
        used += len(current)
    return texts


# --- form elements: buttons, options, inputs, modals -------------------------------------------


def button(text: str, action_id: str, value: str = "", *, style: str | None = None) -> dict[str, Any]:
    """A button (``style``: "primary" or "danger"); ``value`` is what the click carries back."""
    element: dict[str, Any] = {"type": "button", "action_id": action_id, "text": plain(cut(text, BUTTON_TEXT))}
    if value:
        element["value"] = value
    if style:
        element["style"] = style
    return element


def option(text: str, value: str) -> dict[str, Any]:
    """An option of a select, radio buttons or checkboxes: what it shows, then what it sends."""
    return {"text": plain(cut(text, OPTION_TEXT)), "value": value}


def options(labels: Mapping[E, str]) -> list[dict[str, Any]]:
    """One option per choice of an enum's labels, in the mapping's order."""
    return [option(label, choice.value) for choice, label in labels.items()]


def select(choices: list[dict[str, Any]], initial: str | None = None, placeholder: str = "Pick one") -> dict[str, Any]:
    """A static select of ``choices``, showing the one whose value is ``initial``."""
    element: dict[str, Any] = {"type": "static_select", "placeholder": plain(placeholder), "options": choices}
    chosen = next((o for o in choices if o["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return element


def checkboxes(choices: list[dict[str, Any]], initial: Iterable[str] = ()) -> dict[str, Any]:
    """Checkboxes of ``choices``, those whose value is in ``initial`` ticked."""
    element: dict[str, Any] = {"type": "checkboxes", "options": choices}
    ticked = set(initial)
    chosen = [o for o in choices if o["value"] in ticked]
    if chosen:
        element["initial_options"] = chosen
    return element


def input_block(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool = False, hint: str = ""
) -> dict[str, Any]:
    """A modal input whose element answers under ``FIELD``: its value arrives as
    ``state.values[block_id][FIELD]``, and a field error is keyed by ``block_id``."""
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain(cut(label, INPUT_TEXT)),
        "optional": optional,
        "element": {**element, "action_id": FIELD},
    }
    if hint:
        block["hint"] = plain(cut(hint, INPUT_TEXT))
    return block


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only tells (no Submit, a Close button): what a submission's acknowledgement
    shows with ``response_action: update`` — in the HTTP response, so no Web API call (and no
    rate limit) stands between the user and the answer
    (https://api.slack.com/surfaces/modals#updating_response)."""
    return {
        "type": "modal",
        "title": plain(cut(title, VIEW_TITLE)),
        "close": plain("Close"),
        "blocks": [section(cut(text, SECTION_BUDGET))],
    }


def modal(callback: str, title: str, blocks: Blocks, *, submit: str = "Save", metadata: str = "") -> dict[str, Any]:
    """A modal with Submit and Cancel; ``metadata`` comes back on submission (``private_metadata``)."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback,
        "title": plain(cut(title, VIEW_TITLE)),
        "submit": plain(cut(submit, VIEW_TITLE)),
        "close": plain("Cancel"),
        "blocks": blocks,
    }
    if metadata:
        view["private_metadata"] = metadata
    return view
