"""Probe endpoints: register, list, remove, record results, and each trader's latest evidence.

Targets live where gateways live: loopback and private addresses only (``POLICY``); a public,
link-local or metadata address is refused when the endpoint is saved and again right before
each call (``guard``). Self-signed TLS is accepted only when asked for, on loopback or
private hosts; otherwise a CA bundle given at registration, or the system store.

Services take ``session`` and ``now`` and never commit; a rule broken is a
``ServiceError(message, field=...)`` and nothing is stored.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, func, select

from bot import audit
from bot import netguard as ng
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.probe.models import HEALTHY, ProbeEndpoint, ProbeKind, ProbeResult, ProbeState, TlsMode
from bot.probe.outcome import Outcome, tidy
from bot.profile.models import Automation
from bot.secret_text import REFUSAL as SECRET_REFUSAL
from bot.secret_text import looks_like_secret

POLICY = ng.Policy(allowed=frozenset({ng.AddressClass.LOOPBACK, ng.AddressClass.PRIVATE}), purpose="a probe")
LABEL_LIMIT = 64
KEEP_RESULTS = timedelta(days=30)
API_SUFFIX = "/v1/api"
WHAT = {"url": "The gateway URL", "tws": "The TWS / IB Gateway address"}


@dataclass(frozen=True)
class EndpointInput:
    trader_id: str
    label: str
    url: str | None = None  # a Client Portal Gateway / IBeam base URL (https)
    tws: str | None = None  # a TWS / IB Gateway API socket, HOST:PORT
    ca_bundle: str | None = None
    allow_self_signed: bool = False
    automation: str | None = None  # the name of an automation on the desk


def check_label(label: str) -> str:
    text = label.strip()
    if not text:
        raise ServiceError("Give the endpoint a label (e.g. 'alice-gateway').", field="label")
    if len(text) > LABEL_LIMIT:
        raise ServiceError(f"Keep the label to {LABEL_LIMIT} characters (it has {len(text)}).", field="label")
    if tidy(text, LABEL_LIMIT) != text:
        raise ServiceError("The label may not contain control or invisible characters.", field="label")
    if looks_like_secret(text):
        raise ServiceError(SECRET_REFUSAL, field="label")
    return text


def _ca_bundle(path: str) -> str:
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise ServiceError(f"The CA bundle {tidy(path, 80)!r} is not a file.", field="ca_bundle")
    try:
        ssl.create_default_context(cafile=full)
    except (OSError, ssl.SSLError, ValueError):
        raise ServiceError(
            f"The CA bundle {tidy(path, 80)!r} holds no PEM certificate that can be loaded.", field="ca_bundle"
        ) from None
    return full


def add_endpoint(
    *,
    session: Session,
    desk: Desk,
    data: EndpointInput,
    actor: str,
    now: datetime,
    resolve: ng.Resolver = ng.system_resolver,
) -> ProbeEndpoint:
    """Register an endpoint on ``desk``; ServiceError(field=...) on bad input, nothing stored."""
    assert desk.id is not None
    trader = desks.check_user_id(data.trader_id.strip(), field="trader")
    label = check_label(data.label)
    automation_id: int | None = None
    if data.automation is not None:
        automation = session.exec(
            select(Automation).where(Automation.desk_id == desk.id, Automation.name == data.automation.strip())
        ).first()
        if automation is None:
            raise ServiceError(
                f"The {desk.name} desk has no automation named {tidy(data.automation, 64)!r}.", field="automation"
            )
        if automation.owner_id != trader:
            raise ServiceError(
                f"The automation {tidy(automation.name, 64)!r} is owned by {automation.owner_id}: register its "
                "endpoint under its owner.",
                field="trader",
            )
        automation_id = automation.id
    elif not desks.is_member(session=session, desk_id=desk.id, user_id=trader, role=Role.TRADER):
        raise ServiceError(f"{trader} is not a trader on the {desk.name} desk.", field="trader")
    if (data.url is None) == (data.tws is None):
        raise ServiceError("Give either a gateway URL or a TWS / IB Gateway HOST:PORT.", field="url")
    if data.tws is not None and (data.ca_bundle is not None or data.allow_self_signed):
        field = "ca_bundle" if data.ca_bundle is not None else "allow_self_signed"
        raise ServiceError(
            "A TWS / IB Gateway API socket speaks no TLS: no CA bundle or self-signed option.", field=field
        )
    if data.ca_bundle is not None and data.allow_self_signed:
        raise ServiceError("Give a CA bundle or allow self-signed, not both.", field="allow_self_signed")
    if session.exec(
        select(ProbeEndpoint.id).where(ProbeEndpoint.desk_id == desk.id, ProbeEndpoint.label == label)
    ).first():
        raise ServiceError(f"The {desk.name} desk already has an endpoint labelled {label!r}.", field="label")

    path, tls, bundle = "", None, None  # a gateway's path and TLS; an API socket has neither
    if data.url is not None:
        parsed = ng.parse_url(data.url, what=WHAT["url"], field="url", schemes=("https",))
        path = parsed.path[: -len(API_SUFFIX)] if parsed.path.endswith(API_SUFFIX) else parsed.path
        if len(path) > 200:
            raise ServiceError("The gateway URL's path is too long.", field="url")
        checked = ng.check(parsed.host, parsed.port, policy=POLICY, what=WHAT["url"], field="url", resolve=resolve)
        tls = TlsMode.SYSTEM
        if data.ca_bundle is not None:
            tls, bundle = TlsMode.CA_BUNDLE, _ca_bundle(data.ca_bundle)
        elif data.allow_self_signed:
            if not checked.classes <= {ng.AddressClass.LOOPBACK, ng.AddressClass.PRIVATE}:
                raise ServiceError(
                    "Self-signed certificates are accepted only on loopback or private hosts.",
                    field="allow_self_signed",
                )
            tls = TlsMode.SELF_SIGNED
        kind, host, port = ProbeKind.GATEWAY, parsed.host, parsed.port
    else:
        assert data.tws is not None
        host, port = ng.parse_host_port(data.tws, what=WHAT["tws"], field="tws")
        ng.check(host, port, policy=POLICY, what=WHAT["tws"], field="tws", resolve=resolve)
        kind = ProbeKind.TWS
    row = ProbeEndpoint(
        desk_id=desk.id,
        trader_id=trader,
        automation_id=automation_id,
        label=label,
        kind=kind,
        host=host,
        port=port,
        path=path,
        tls=tls,
        ca_bundle=bundle,
        created_by=actor[:32],
        created_at=now,
    )
    session.add(row)
    session.flush()
    _record(session, row, "probe_add", actor=actor, now=now, tls=row.tls)
    return row


def list_endpoints(*, session: Session, desk_id: int, trader_id: str | None = None) -> list[ProbeEndpoint]:
    query = select(ProbeEndpoint).where(ProbeEndpoint.desk_id == desk_id)
    if trader_id is not None:
        query = query.where(ProbeEndpoint.trader_id == trader_id)
    return list(session.exec(query.order_by(col(ProbeEndpoint.trader_id), col(ProbeEndpoint.label))).all())


def remove_endpoint(*, session: Session, desk: Desk, label: str, actor: str, now: datetime) -> ProbeEndpoint:
    row = session.exec(
        select(ProbeEndpoint).where(ProbeEndpoint.desk_id == desk.id, ProbeEndpoint.label == label.strip())
    ).first()
    if row is None:
        raise ServiceError(f"The {desk.name} desk has no endpoint labelled {tidy(label, 64)!r}.", field="label")
    session.exec(delete(ProbeResult).where(col(ProbeResult.endpoint_id) == row.id))
    session.delete(row)
    _record(session, row, "probe_remove", actor=actor, now=now)
    return row


def _record(session: Session, row: ProbeEndpoint, action: str, *, actor: str, now: datetime, **detail: object) -> None:
    """The audit event of an endpoint added or removed: its label, trader and target."""
    detail.update(label=row.label, trader=row.trader_id, target=target_text(row))
    audit.record(session, subject=f"probe:{row.id}", action=action, at=now, actor=actor, desk_id=row.desk_id, **detail)


def target_text(row: ProbeEndpoint) -> str:
    """How an endpoint's target is shown: its base URL or HOST:PORT (TLS mode apart)."""
    if row.kind == ProbeKind.GATEWAY:
        return f"https://{ng.host_port(row.host, row.port)}{row.path}"
    return ng.host_port(row.host, row.port)


def tls_text(row: ProbeEndpoint) -> str:
    if row.kind != ProbeKind.GATEWAY:
        return ""
    if row.tls == TlsMode.SELF_SIGNED:
        return "self-signed allowed (not verified)"
    if row.tls == TlsMode.CA_BUNDLE:
        return f"CA bundle {row.ca_bundle}"
    return "system CA store"


def guard(row: ProbeEndpoint, *, resolve: ng.Resolver = ng.system_resolver) -> ng.Checked:
    """The call-time check: resolve again, every address allowed (ServiceError otherwise)."""
    field = "url" if row.kind == ProbeKind.GATEWAY else "tws"
    checked = ng.check(row.host, row.port, policy=POLICY, what=WHAT[field], field=field, resolve=resolve)
    if row.tls == TlsMode.SELF_SIGNED and not checked.classes <= {ng.AddressClass.LOOPBACK, ng.AddressClass.PRIVATE}:
        raise ServiceError("Self-signed certificates are accepted only on loopback or private hosts.", field=field)
    return checked


def record_result(*, session: Session, endpoint_id: int, outcome: Outcome, now: datetime) -> ProbeResult | None:
    """Store one outcome (None when the endpoint was removed meanwhile); results older than
    ``KEEP_RESULTS`` for that endpoint go."""
    if session.get(ProbeEndpoint, endpoint_id) is None:
        return None
    row = ProbeResult(
        endpoint_id=endpoint_id,
        checked_at=now,
        state=outcome.state,
        healthy=outcome.state in HEALTHY,
        detail=tidy(outcome.detail, 300),
        address=outcome.address,
        server_version=outcome.server_version,
        session_expires_at=now + outcome.expires_in if outcome.expires_in is not None else None,
    )
    session.add(row)
    session.exec(
        delete(ProbeResult).where(
            col(ProbeResult.endpoint_id) == endpoint_id, col(ProbeResult.checked_at) < now - KEEP_RESULTS
        )
    )
    return row


@dataclass(frozen=True)
class EndpointStatus:
    """An endpoint and its latest result (None: never probed)."""

    endpoint_id: int
    trader_id: str
    automation_id: int | None
    label: str
    kind: ProbeKind
    target: str
    state: ProbeState | None
    healthy: bool
    detail: str
    checked_at: datetime | None
    server_version: str | None
    session_expires_at: datetime | None


def latest(
    *, session: Session, desk_id: int, trader_ids: Sequence[str] | None = None
) -> dict[str, list[EndpointStatus]]:
    """Each trader's endpoints on ``desk_id`` with their latest result, by trader id (the
    interface the roster, escalations and Slack will read)."""
    newest = (
        select(ProbeResult.endpoint_id, func.max(ProbeResult.id).label("result_id"))
        .group_by(col(ProbeResult.endpoint_id))
        .subquery()
    )
    query = (
        select(ProbeEndpoint, ProbeResult)
        .join(newest, newest.c.endpoint_id == ProbeEndpoint.id, isouter=True)
        .join(ProbeResult, col(ProbeResult.id) == newest.c.result_id, isouter=True)
        .where(ProbeEndpoint.desk_id == desk_id)
        .order_by(col(ProbeEndpoint.trader_id), col(ProbeEndpoint.label))
    )
    if trader_ids is not None:
        query = query.where(col(ProbeEndpoint.trader_id).in_(list(trader_ids)))
    out: dict[str, list[EndpointStatus]] = {}
    for endpoint, result in session.exec(query).all():
        assert endpoint.id is not None
        out.setdefault(endpoint.trader_id, []).append(
            EndpointStatus(
                endpoint_id=endpoint.id,
                trader_id=endpoint.trader_id,
                automation_id=endpoint.automation_id,
                label=endpoint.label,
                kind=ProbeKind(endpoint.kind),
                target=target_text(endpoint),
                state=ProbeState(result.state) if result is not None else None,
                healthy=bool(result is not None and result.healthy),
                detail=result.detail if result is not None else "",
                checked_at=result.checked_at if result is not None else None,
                server_version=result.server_version if result is not None else None,
                session_expires_at=result.session_expires_at if result is not None else None,
            )
        )
    return out
