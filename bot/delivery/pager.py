"""Paging over HTTP (httpx): PagerDuty Events API v2, or a generic signed JSON webhook.

Desk configuration decides: ``pager_kind`` (none | pagerduty | webhook), ``pager_url``
and ``pager_secret`` (PagerDuty routing key, or the webhook's HMAC secret), encrypted at
rest with ``bot.crypto`` (MultiFernet under ``PREFLIGHT_SECRET_KEYS``). The outbox calls ``Pager.send``; a
transient failure (connection error, timeout, 429, 5xx) is retried here a couple of
times with a short backoff and then handed back to the outbox, which backs off for
longer. A 4xx is permanent (a wrong routing key does not get better by retrying).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.crypto import CryptoError, Keyring, keyring
from bot.delivery.errors import DeliveryError

if TYPE_CHECKING:
    import httpx

PAGERDUTY_URL = "https://events.pagerduty.com"
SIGNATURE_HEADER = "X-Preflight-Signature"
PAGER_KINDS = ("none", "pagerduty", "webhook")
ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass(frozen=True)
class PagerTarget:
    """A desk's pager settings as delivery needs them (read at delivery time)."""

    desk_name: str
    kind: str  # none | pagerduty | webhook
    url: str | None
    secret_token: str | None  # encrypted (bot.crypto)


def url_problem(url: str) -> str | None:
    """Why ``url`` can't be a pager URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"the pager URL {url!r} is malformed: expected http(s)://host[/path]"
    if any(ch.isspace() for ch in url):
        return f"the pager URL {url!r} is malformed: it contains whitespace"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"the pager URL {url!r} is malformed: bad port"
    return None


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- the client ---------------------------------------------------------------------------


class Pager:
    def __init__(
        self,
        *,
        keys: Keyring | Sequence[str] | str | None,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        # httpx is imported when a Pager is made (the outbox worker, off the way to /healthz):
        # its __init__ pulls in its command line (click, rich, pygments) when they are installed.
        import httpx

        self.keys = keyring(keys)
        self.retries = retries
        self.backoff = backoff
        self.http = httpx.Client(timeout=timeout, transport=transport, headers={"User-Agent": "ib-preflight"})

    def close(self) -> None:
        self.http.close()

    def send(self, *, target: PagerTarget, event: dict[str, Any]) -> dict[str, Any]:
        """Deliver one pager event (payload of an outbox ``pager.event``); DeliveryError on failure.

        A stored secret that the configured keys can't read is a permanent, recorded failure
        (never a silent stall)."""
        action = str(event.get("action"))
        if action not in ACTIONS:
            raise DeliveryError(f"unknown pager action {action!r}", retry_after=None)
        if target.kind == "none":
            return {"skipped": "no pager configured for the desk"}
        try:
            secret = self.keys.decrypt(target.secret_token) if target.secret_token else None
        except CryptoError as exc:
            raise DeliveryError(f"pager secret unreadable: {exc}", retry_after=None) from None
        if target.kind == "pagerduty":
            if not secret:
                raise DeliveryError("no PagerDuty routing key configured for the desk", retry_after=None)
            url = (target.url or PAGERDUTY_URL).rstrip("/") + "/v2/enqueue"
            body = pagerduty_body(event, routing_key=secret, desk_name=target.desk_name)
            headers = {"Content-Type": "application/json"}
        elif target.kind == "webhook":
            if not target.url:
                raise DeliveryError("no webhook URL configured for the desk", retry_after=None)
            url = target.url
            body = webhook_body(event, desk_name=target.desk_name)
            headers = {"Content-Type": "application/json"}
        else:
            raise DeliveryError(f"unknown pager kind {target.kind!r}", retry_after=None)
        raw = json.dumps(body, separators=(",", ":")).encode()
        if target.kind == "webhook" and secret:
            headers[SIGNATURE_HEADER] = sign(raw, secret)
        return self._post(url, raw, headers)

    def _post(self, url: str, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
        import httpx

        error = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self.http.post(url, content=raw, headers=headers)
            except httpx.TimeoutException as exc:
                error = f"pager timed out ({type(exc).__name__})"
                continue
            except httpx.HTTPError as exc:
                error = f"pager unreachable: {type(exc).__name__}: {exc}"[:300]
                continue
            if response.is_success:
                try:
                    data = response.json()
                except ValueError:
                    data = {}
                return {"status": response.status_code, "response": data if isinstance(data, dict) else {}}
            error = f"pager answered {response.status_code}: {response.text[:200]}"
            if response.status_code == 429 or response.status_code >= 500:
                continue
            raise DeliveryError(error, retry_after=None)
        raise DeliveryError(error, retry_after=0.0)


def pagerduty_body(event: dict[str, Any], *, routing_key: str, desk_name: str) -> dict[str, Any]:
    """Events API v2: trigger carries a payload; acknowledge / resolve only the dedup_key."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": event["action"],
        "dedup_key": str(event["escalation_id"]),
    }
    if event["action"] == "trigger":
        body["payload"] = {
            "summary": str(event.get("summary") or "IB Preflight escalation")[:1024],
            "source": f"ib-preflight/{desk_name}",
            "severity": "critical",
            "component": "ib-preflight",
            "group": desk_name,
            "class": str(event.get("escalation_kind") or "escalation"),
            "custom_details": event.get("details") or {},
        }
    return body


def webhook_body(event: dict[str, Any], *, desk_name: str) -> dict[str, Any]:
    return {
        "event": event["action"],
        "desk": desk_name,
        "escalation_id": event["escalation_id"],
        "kind": event.get("escalation_kind"),
        "summary": event.get("summary"),
        "details": event.get("details") or {},
    }
