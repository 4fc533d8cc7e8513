"""Paging over HTTP (httpx): PagerDuty Events API v2, or a generic signed JSON webhook.

Desk configuration decides: ``pager_kind`` (none | pagerduty | webhook), ``pager_url``
and ``pager_secret`` (PagerDuty routing key, or the webhook's HMAC secret), encrypted at
rest with ``bot.crypto`` (MultiFernet under ``PREFLIGHT_SECRET_KEYS``). The outbox calls ``Pager.send``; a
transient failure (connection error, timeout, 429, 5xx) is retried here a couple of
times with a short backoff and then handed back to the outbox, which backs off for
longer. A 4xx is permanent (a wrong routing key does not get better by retrying).

Where a page may go (``check_url``, through ``bot.netguard``, the one guard for every URL the
bot calls): https only, to public addresses. Loopback and private addresses (and plain http to
them) only when the operator allows private targets (``PREFLIGHT_ALLOW_PRIVATE_PAGER=1``, an
on-premises pager); link-local, metadata and reserved addresses never. The URL is checked when
it is saved and again at every delivery after resolving the name; the request then goes to
one of the checked addresses (the name in the Host header and for TLS), never re-resolved,
and a redirect is never followed. A refused target is a permanent, recorded delivery failure.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from bot import netguard as ng
from bot.crypto import CryptoError, Keyring, keyring
from bot.delivery.errors import DeliveryError

if TYPE_CHECKING:
    import ssl

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


PUBLIC_ONLY = ng.Policy(allowed=frozenset({ng.AddressClass.PUBLIC}), purpose="the pager")
PRIVATE_ALLOWED = ng.Policy(
    allowed=frozenset({ng.AddressClass.PUBLIC, ng.AddressClass.PRIVATE, ng.AddressClass.LOOPBACK}),
    purpose="the pager (PREFLIGHT_ALLOW_PRIVATE_PAGER=1)",
)
_ON_PREMISES = frozenset({ng.AddressClass.PRIVATE, ng.AddressClass.LOOPBACK})
WHAT = "The pager URL"


def check_url(
    url: str,
    *,
    allow_private: bool = False,
    resolve: ng.Resolver = ng.system_resolver,
    field: str = "pager_url",
) -> tuple[ng.ParsedUrl, ng.Checked]:
    """``url`` parsed and resolved, every address allowed; ``netguard.Refused`` (a ServiceError
    carrying ``field``) otherwise.

    https only, public addresses only; with ``allow_private`` also loopback and private
    addresses, and plain http to a host whose every address is one of those."""
    schemes = ("https", "http") if allow_private else ("https",)
    parts = urlsplit(url.strip())
    if parts.query and "#" not in url:  # a webhook's token may ride in its query: kept, not checked
        url = urlunsplit(parts._replace(query=""))
    parsed = ng.parse_url(url, what=WHAT, field=field, schemes=schemes)
    parsed = ng.ParsedUrl(scheme=parsed.scheme, host=parsed.host, port=parsed.port, path=_target_of(parts))
    policy = PRIVATE_ALLOWED if allow_private else PUBLIC_ONLY
    checked = ng.check(parsed.host, parsed.port, policy=policy, what=WHAT, field=field, resolve=resolve)
    if parsed.scheme == "http" and not checked.classes <= _ON_PREMISES:
        raise ng.Refused(
            f"{WHAT} must use https:// to reach a public address (plain http only to private ones).", field=field
        )
    return parsed, checked


def _target_of(parts: SplitResult) -> str:
    """The request target as given: its path (trailing slash kept) and query."""
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- the client ---------------------------------------------------------------------------


@functools.cache
def _certificates() -> ssl.SSLContext:
    """The TLS context every pager call verifies with, as httpx makes it (certifi's store, no
    SSL_CERT_FILE from the environment: the client ignores the environment), made once a
    process: loading the store costs each new client about 20 ms of CPU."""
    import httpx

    return httpx.create_ssl_context(trust_env=False)


class Pager:
    def __init__(
        self,
        *,
        keys: Keyring | Sequence[str] | str | None,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        allow_private: bool = False,
        resolve: ng.Resolver = ng.system_resolver,
    ) -> None:
        # httpx is imported when a Pager is made (the outbox worker, off the way to /healthz):
        # its __init__ pulls in its command line (click, rich, pygments) when they are installed.
        import httpx

        self.keys = keyring(keys)
        self.retries = retries
        self.backoff = backoff
        self.allow_private = allow_private
        self.resolve = resolve
        self.http = httpx.Client(
            timeout=timeout,
            verify=_certificates(),
            transport=transport,
            headers={"User-Agent": "ib-preflight"},
            follow_redirects=False,  # a redirect could point anywhere the guard would refuse
            trust_env=False,  # never through a proxy from the environment: the checked address is the one called
        )

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
        try:
            parsed, checked = check_url(url, allow_private=self.allow_private, resolve=self.resolve)
        except ng.Refused as exc:  # refused (or no longer resolving): recorded, never requested
            raise DeliveryError(f"pager target refused: {exc}"[:300], retry_after=None) from None
        raw = json.dumps(body, separators=(",", ":")).encode()
        if target.kind == "webhook" and secret:
            headers[SIGNATURE_HEADER] = sign(raw, secret)
        return self._post(parsed, checked, raw, headers)

    def _post(self, parsed: ng.ParsedUrl, checked: ng.Checked, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
        import httpx

        error = "no attempt"
        headers = {**headers, "Host": ng.host_port(parsed.host, parsed.port)}
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            address = checked.addresses[attempt % len(checked.addresses)]
            url = f"{parsed.scheme}://{ng.host_port(address, parsed.port)}{parsed.path}"
            extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" and parsed.host != address else {}
            try:
                response = self.http.post(url, content=raw, headers=headers, extensions=extensions)
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
