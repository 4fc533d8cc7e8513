"""Paging over HTTP (httpx): PagerDuty Events API v2, or a generic signed JSON webhook.

Desk configuration decides: ``pager_kind`` (none | pagerduty | webhook), ``pager_url``
and ``pager_secret`` (PagerDuty routing key, or the webhook's HMAC secret), encrypted at
rest with Fernet under ``PREFLIGHT_SECRET_KEY``. The outbox calls ``Pager.send``; a
transient failure (connection error, timeout, 429, 5xx) is retried here a couple of
times with a short backoff and then handed back to the outbox, which backs off for
longer. A 4xx is permanent (a wrong routing key does not get better by retrying).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.fernet import Fernet, InvalidToken

from bot.delivery.outbox import DeliveryError
from bot.desks.models import Desk
from bot.errors import ServiceError

PAGERDUTY_URL = "https://events.pagerduty.com"
SIGNATURE_HEADER = "X-Preflight-Signature"
PAGER_KINDS = ("none", "pagerduty", "webhook")
ACTIONS = ("trigger", "acknowledge", "resolve")


# --- secrets at rest --------------------------------------------------------------------


def _fernet(secret_key: str | None) -> Fernet:
    if not secret_key:
        raise ServiceError("PREFLIGHT_SECRET_KEY is not set: it is needed to store pager secrets encrypted")
    # Any passphrase works: derive the 32-byte Fernet key from it.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))


def encrypt_secret(secret: str, *, secret_key: str | None) -> str:
    return _fernet(secret_key).encrypt(secret.encode()).decode()


def decrypt_secret(token: str, *, secret_key: str | None) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ServiceError("the stored pager secret can't be decrypted with PREFLIGHT_SECRET_KEY") from None


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(f"pager URL {url!r} is malformed: expected http(s)://host[/path]")
    if any(ch.isspace() for ch in url):
        raise ServiceError(f"pager URL {url!r} is malformed: it contains whitespace")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ServiceError(f"pager URL {url!r} is malformed: bad port") from None
    return url


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- the client ---------------------------------------------------------------------------


class Pager:
    def __init__(
        self,
        *,
        secret_key: str | None,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.secret_key = secret_key
        self.retries = retries
        self.backoff = backoff
        self.http = httpx.Client(timeout=timeout, transport=transport, headers={"User-Agent": "ib-preflight"})

    def close(self) -> None:
        self.http.close()

    def send(self, *, desk: Desk, event: dict[str, Any]) -> dict[str, Any]:
        """Deliver one pager event (payload of an outbox ``pager.event``); DeliveryError on failure."""
        action = str(event.get("action"))
        if action not in ACTIONS:
            raise DeliveryError(f"unknown pager action {action!r}", retry_after=None)
        if desk.pager_kind == "none":
            return {"skipped": "no pager configured for the desk"}
        secret = decrypt_secret(desk.pager_secret, secret_key=self.secret_key) if desk.pager_secret else None
        if desk.pager_kind == "pagerduty":
            if not secret:
                raise DeliveryError("no PagerDuty routing key configured for the desk", retry_after=None)
            url = (desk.pager_url or PAGERDUTY_URL).rstrip("/") + "/v2/enqueue"
            body = pagerduty_body(event, routing_key=secret, desk_name=desk.name)
            headers = {"Content-Type": "application/json"}
        elif desk.pager_kind == "webhook":
            if not desk.pager_url:
                raise DeliveryError("no webhook URL configured for the desk", retry_after=None)
            url = desk.pager_url
            body = webhook_body(event, desk_name=desk.name)
            headers = {"Content-Type": "application/json"}
        else:
            raise DeliveryError(f"unknown pager kind {desk.pager_kind!r}", retry_after=None)
        raw = json.dumps(body, separators=(",", ":")).encode()
        if desk.pager_kind == "webhook" and secret:
            headers[SIGNATURE_HEADER] = sign(raw, secret)
        return self._post(url, raw, headers)

    def _post(self, url: str, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
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
