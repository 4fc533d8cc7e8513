"""The Slack adapter of the outbox: a WebClient without in-call retries, and one call per message.

Posts that must appear once carry Slack message metadata (``metadata_of``: the escalation
channel's level-2 post; the checklist stamps its own), so that a retry after an attempt whose
outcome is unknown can find the message in the channel (``find_posted``) and adopt it instead
of posting it again (``bot.delivery.ledger``). Posting metadata needs no scope beyond
``chat:write``; reading it back needs ``channels:history`` (``groups:history`` in a private
channel).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.delivery.errors import DeliveryError
from bot.delivery.outbox import Kind
from bot.delivery.specs import EscalationChannelDigest, EscalationLevel2

log = logging.getLogger(__name__)

T = TypeVar("T")

Metadata = dict[str, Any]  # {"event_type": ..., "event_payload": {...}} (https://api.slack.com/metadata)

ESCALATION_EVENT = "preflight_escalation"
HISTORY_PAGE = 200  # conversations.history: "we recommend no more than 200 results at a time"
HISTORY_PAGES = 5  # at most 1,000 messages since the first attempt are looked through


def delivery_client(client: WebClient) -> WebClient:
    """The same workspace and timeout, without slack_sdk's in-call retries (see module doc).
    Of the same class (a client that counts its calls, bot.metrics, makes one that does too)."""
    return type(client)(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        retry_handlers=[],
        logger=logging.getLogger("slack_sdk.web.base_client"),  # the Web API logger serve keeps payload-free
    )


def slack_call(call: Callable[[], Any]) -> dict[str, Any]:
    response = slack_errors(call)
    return dict(response.data) if isinstance(response.data, dict) else {}


def slack_errors(call: Callable[[], T]) -> T:
    """``call()``, its failures as DeliveryError: 429 (with Retry-After), 5xx and the network
    transient, any other refusal permanent."""
    try:
        return call()
    except SlackApiError as exc:
        status = exc.response.status_code
        error = str(exc.response.get("error") or f"HTTP {status}")
        if status == 429:
            raw = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after") or "1"
            if isinstance(raw, list):
                raw = raw[0]
            try:
                wait = float(raw)
            except ValueError:
                wait = 1.0
            raise DeliveryError(
                f"rate limited by Slack (Retry-After {wait:g}s)", retry_after=wait, rate_limited=True
            ) from None
        if status >= 500:
            raise DeliveryError(f"Slack answered {status} ({error})", retry_after=0.0) from None
        raise DeliveryError(f"Slack refused: {error}", retry_after=None) from None
    except Exception as exc:  # timeouts, refused connections, DNS: Slack unreachable
        raise DeliveryError(f"Slack unreachable: {type(exc).__name__}: {exc}"[:300], retry_after=0.0) from None


def metadata_of(kind: str, body: Mapping[str, Any]) -> Metadata | None:
    """The message metadata a channel post is stamped with, if it must appear once: a
    ``metadata`` object in the payload, the level-2 post of an escalation, or the escalation
    channel's digest of a level-2 pass."""
    if kind != Kind.SLACK_POST:
        return None
    given = body.get("metadata")
    if isinstance(given, dict) and isinstance(given.get("event_type"), str):
        return given
    render = body.get("render")
    if isinstance(render, Mapping) and render.get("view") == EscalationChannelDigest.VIEW and render.get("key"):
        return {"event_type": ESCALATION_EVENT, "event_payload": {"digest": str(render["key"])}}
    if isinstance(render, Mapping) and render.get("view") == EscalationLevel2.VIEW:
        try:
            escalation_id = int(render["escalation_id"])
        except (KeyError, TypeError, ValueError):
            return None
        return {"event_type": ESCALATION_EVENT, "event_payload": {"escalation_id": escalation_id}}
    return None


def _carries(message: Mapping[str, Any], metadata: Metadata) -> bool:
    found = message.get("metadata")
    if not isinstance(found, Mapping) or found.get("event_type") != metadata["event_type"]:
        return False
    payload = found.get("event_payload")
    wanted = metadata.get("event_payload") or {}
    return isinstance(payload, Mapping) and all(payload.get(k) == v for k, v in wanted.items())


def find_posted(client: WebClient, *, channel: str, metadata: Metadata, oldest: float) -> str | None:
    """The ``ts`` of a message in ``channel`` since ``oldest`` (epoch seconds) stamped with
    ``metadata`` (its event type and every field of its payload), or None.

    ``conversations.history`` (newest first, ``include_all_metadata``; cursor pages). A
    rate limit, a 5xx or Slack unreachable raises (the caller tries again later: posting now
    could post twice); any other refusal (``missing_scope`` on an install made before the
    app asked for ``channels:history``, ``not_in_channel``) is logged and answered None —
    the caller posts as it did before it could look."""
    cursor: str | None = None
    for _ in range(HISTORY_PAGES):
        try:
            response = client.conversations_history(
                channel=channel,
                oldest=f"{oldest:.6f}",
                include_all_metadata=True,
                limit=HISTORY_PAGE,
                cursor=cursor,
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429 or status >= 500:
                raise
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            log.warning("could not look for an earlier post in %s (%s): posting it", channel, error or status)
            return None
        for message in response.get("messages") or []:
            if isinstance(message, Mapping) and _carries(message, metadata) and message.get("ts"):
                return str(message["ts"])
        meta = response.get("response_metadata")
        cursor = meta.get("next_cursor") if isinstance(meta, Mapping) else None
        if not cursor:
            return None
    log.warning(
        "looked through %d messages of %s for an earlier post: posting it", HISTORY_PAGE * HISTORY_PAGES, channel
    )
    return None


def deliver_slack(
    kind: str,
    body: dict[str, Any],
    target: dict[str, Any] | None,
    client: WebClient,
    *,
    metadata: Metadata | None = None,
) -> dict[str, Any]:
    text = str(body.get("text") or "")
    blocks = body.get("blocks")
    if target is not None:
        data = slack_call(
            lambda: client.chat_update(channel=target["channel"], ts=target["ts"], text=text, blocks=blocks)
        )
    else:
        channel = str(body["user"] if kind == Kind.SLACK_DM else body["channel"])
        data = slack_call(
            lambda: client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, unfurl_links=False, metadata=metadata
            )
        )
    return {"channel": data.get("channel"), "ts": data.get("ts")}
