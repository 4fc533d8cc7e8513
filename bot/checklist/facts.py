"""What capabilities above the checklist know about a trader that the checklist shows: a
declared interface like ``bot.checklist.events``, the other way round.

The readiness profile (``bot.profile``) provides, for a run's traders: a recovery-path gap
to mark in the roster, a verified backup (so the trader is not asked to re-declare it), and
whether the trader must confirm the weekly full login today (the week's first trading day,
for TWS / IB Gateway / IBKR Desktop users). The broker probe (``bot.probe.wiring``) provides
what the latest probe of the trader's session found. The checklist never imports either: they
register a provider here when imported. No provider: no facts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlmodel import Session

from bot.checklist.models import ChecklistRun


@dataclass(frozen=True)
class TraderFacts:
    recovery_gap: str | None = None  # plain text for the roster, e.g. "🆘 no backup … (profile)"
    verified_backup: str | None = None  # e.g. "Mobile Authenticator app (TOTP), verified Tue 24 Nov"
    weekly_login: bool = False  # confirming authentication today includes the weekly full login
    probe: str | None = None  # plain text, e.g. "🔌 verified by probe 08:31" (bot.probe)


Provider = Callable[[Session, ChecklistRun, Sequence[str]], Mapping[str, TraderFacts]]

_providers: list[Provider] = []


def provide(provider: Provider) -> Provider:
    """Register ``provider`` once (re-imports don't register it twice)."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def facts_for(session: Session, run: ChecklistRun, traders: Sequence[str]) -> dict[str, TraderFacts]:
    """Every provider's facts for ``traders`` (a later provider's fields win when set)."""
    out: dict[str, TraderFacts] = {}
    for provider in list(_providers):
        for user, facts in provider(session, run, traders).items():
            known = out.get(user)
            if known is None:
                out[user] = facts
            else:
                out[user] = TraderFacts(
                    recovery_gap=facts.recovery_gap or known.recovery_gap,
                    verified_backup=facts.verified_backup or known.verified_backup,
                    weekly_login=facts.weekly_login or known.weekly_login,
                    probe=facts.probe or known.probe,
                )
    return out
