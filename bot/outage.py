"""One answer for any Slack request the bot can't complete: the database unavailable, locked
or read-only, or Slack refusing a call on the request's path.

The user is told within Slack's 3 seconds, and told the truth: nothing was recorded, try again
(the request's transaction rolled back, so nothing is lost or half-stored when the database
comes back). A click or a shortcut hears it through the interaction's ``response_url`` (a plain
POST from a short-lived thread: never a Web API call that could sleep on a rate limit); a slash
command in the acknowledgement's body; a modal submission as a field error
(``response_action: errors``). Never a bare HTTP 500.

Used by Bolt's global error handler (``bot.slack.app``) and by the WSGI layer (``bot.web``)
around dispatch. No Slack SDK here: the answers are plain JSON.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

NOT_SAVED = "Couldn't save your answer: nothing was recorded. Try again in a minute."
RESPONSE_URL_TIMEOUT = 2.0  # seconds: the POST runs after the acknowledgement, on its own thread

_OUTAGES: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, DBAPIError, PoolTimeout, TimeoutError)


def is_outage(error: BaseException) -> bool:
    """The database unavailable, locked or read-only (or its pool exhausted), or Slack refusing
    a call made on the request's path: a request the bot can't complete, not a bug in it."""
    if isinstance(error, _OUTAGES):
        return True
    # slack_sdk's errors, by name: shared ground imports no Slack SDK.
    return any(cls.__name__ in ("SlackApiError", "SlackClientError") for cls in type(error).__mro__)


@dataclass(frozen=True)
class Answer:
    """The HTTP acknowledgement to give, and the ``response_url`` to tell the user through."""

    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    response_url: str | None = None


def _json(payload: dict[str, Any]) -> Answer:
    return Answer(body=json.dumps(payload), headers={"content-type": "application/json;charset=utf-8"})


def answer(body: object) -> Answer:
    """What to answer Slack for ``body`` (a parsed request) that could not be completed."""
    if not isinstance(body, dict):
        return Answer()
    kind = body.get("type")
    if kind == "view_submission":
        view = body.get("view") if isinstance(body.get("view"), dict) else {}
        values = ((view or {}).get("state") or {}).get("values") or {}
        blocks = list(values) if isinstance(values, dict) else []
        if blocks:
            return _json({"response_action": "errors", "errors": {str(blocks[0]): NOT_SAVED}})
        return _json(
            {
                "response_action": "update",
                "view": {
                    "type": "modal",
                    "title": {"type": "plain_text", "text": "Not saved"},
                    "blocks": [{"type": "section", "text": {"type": "plain_text", "text": NOT_SAVED}}],
                },
            }
        )
    if kind == "event_callback":
        return Answer(status=503)  # Slack delivers the event again later: nothing is lost
    if "command" in body and kind is None:
        return _json({"response_type": "ephemeral", "text": NOT_SAVED})
    url = body.get("response_url")
    if not isinstance(url, str):
        urls = body.get("response_urls")
        first = urls[0] if isinstance(urls, list) and urls and isinstance(urls[0], dict) else {}
        url = first.get("response_url") if isinstance(first.get("response_url"), str) else None
    if url is None:
        log.warning("a %s could not be completed and has no response_url: the user was not told", kind)
    return Answer(response_url=url)


def tell(url: str) -> None:
    """Post the sentence to ``response_url`` on a short-lived thread (after the acknowledgement)."""
    if not url.startswith(("https://", "http://")):
        return
    threading.Thread(target=_post, args=(url,), name="outage-reply", daemon=True).start()


def _post(url: str) -> None:
    payload = json.dumps({"response_type": "ephemeral", "replace_original": False, "text": NOT_SAVED}).encode()
    request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=RESPONSE_URL_TIMEOUT) as reply:  # a signed request's own URL
            reply.read()
    except Exception as exc:
        log.warning("telling the user through response_url failed: %r", exc)
