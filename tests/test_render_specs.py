"""Render specs: typed at enqueue, stored in today's JSON shape, and a view nobody knows fails for good."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine

from bot.db import session_scope
from bot.delivery.outbox import Kind, enqueue
from bot.delivery.specs import (
    ChecklistReminder,
    EscalationDigest,
    EscalationDM,
    EscalationLevel2,
    ProfileNotice,
    RenderSpec,
    SpecError,
    from_payload,
    stored,
)
from bot.runtime import deliver_due
from tests.support.escalation_fixtures import delivery_client, outbox_rows
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import utc

T0 = utc(2026, 11, 25, 14, 0)

# The JSON each view has always been stored as: rows queued before the typed specs still render.
SHAPES: list[tuple[RenderSpec, str]] = [
    (EscalationDM(12), '{"view":"escalation.dm","escalation_id":12}'),
    (EscalationLevel2(12), '{"view":"escalation.level2","escalation_id":12}'),
    (
        EscalationDigest((3, 4, 5), "digest:7:3:UMGR1"),
        '{"view":"escalation.digest","ids":[3,4,5],"key":"digest:7:3:UMGR1"}',
    ),
    (ChecklistReminder(7, "UTRD1"), '{"view":"checklist.reminder","run_id":7,"trader":"UTRD1"}'),
    (ProfileNotice(9), '{"view":"profile.notice","gap_id":9}'),
]


@pytest.mark.parametrize(("spec", "text"), SHAPES, ids=[s.VIEW for s, _ in SHAPES])
def test_each_spec_is_stored_as_before_and_read_back(spec: RenderSpec, text: str) -> None:
    assert json.dumps(spec.to_payload(), separators=(",", ":")) == text
    assert from_payload(json.loads(text)) == spec
    assert stored({"user": "U1", "render": json.loads(text)}) == spec


def test_an_unknown_or_malformed_view_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="no view for notification 'escalation.fax'"):
        from_payload({"view": "escalation.fax", "escalation_id": 1})
    with pytest.raises(SpecError, match="malformed"):
        from_payload({"view": "escalation.dm"})
    assert stored({"user": "U1"}) is None and stored({"render": {"view": "nope"}}) is None


def test_enqueue_writes_the_spec_into_the_payload(engine: Engine) -> None:
    with session_scope(engine) as session:
        enqueue(
            session=session,
            dedup_key="k",
            kind=Kind.SLACK_DM,
            payload={"user": "U1"},
            render=EscalationDM(5),
            desk_id=None,
            now=T0,
            audit={"subject": "escalation:5", "ok": "notified", "fail": "notify_failed"},
        )
    (row,) = outbox_rows(engine)
    assert row.payload == (
        '{"user":"U1","render":{"view":"escalation.dm","escalation_id":5},'
        '"_audit":{"subject":"escalation:5","ok":"notified","fail":"notify_failed"}}'
    )


def test_a_row_naming_no_known_view_fails_for_good(engine: Engine, fake_slack: FakeSlack) -> None:
    with session_scope(engine) as session:
        enqueue(
            session=session,
            dedup_key="odd",
            kind=Kind.SLACK_DM,
            payload={"user": "U1", "render": {"view": "escalation.fax", "escalation_id": 1}},
            desk_id=None,
            now=T0,
        )
    result = deliver_due(engine, delivery_client(fake_slack.base_url), None, now=T0)
    assert (result.failed, result.delivered) == (1, 0)
    (row,) = outbox_rows(engine)
    assert row.failed_at == T0 and row.last_error == "no view for notification 'escalation.fax'"
    assert fake_slack.of("chat.postMessage") == []
