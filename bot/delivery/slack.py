"""The Slack adapter of the outbox: a WebClient without in-call retries, and one call per message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.delivery.errors import DeliveryError
from bot.delivery.outbox import Kind


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
    try:
        response = call()
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
    return dict(response.data) if isinstance(response.data, dict) else {}


def deliver_slack(kind: str, body: dict[str, Any], target: dict[str, Any] | None, client: WebClient) -> dict[str, Any]:
    text = str(body.get("text") or "")
    blocks = body.get("blocks")
    if target is not None:
        data = slack_call(
            lambda: client.chat_update(channel=target["channel"], ts=target["ts"], text=text, blocks=blocks)
        )
    else:
        channel = str(body["user"] if kind == Kind.SLACK_DM else body["channel"])
        data = slack_call(
            lambda: client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False)
        )
    return {"channel": data.get("channel"), "ts": data.get("ts")}
