"""Every table of every capability, registered on ``SQLModel.metadata``.

Import this (Alembic's env.py, tests, ``create_all``) to see the whole schema; each model
lives in its capability's ``models`` module.
"""

from bot import audit as audit
from bot import events_once as events_once
from bot import interactions as interactions
from bot.checklist import models as checklist
from bot.delivery import ledger as ledger
from bot.delivery import models as delivery
from bot.desks import models as desks
from bot.escalation import models as escalation
from bot.people import models as people
from bot.probe import models as probe
from bot.profile import models as profile
from bot.summary import models as summary

__all__ = [
    "audit",
    "checklist",
    "delivery",
    "desks",
    "escalation",
    "events_once",
    "interactions",
    "ledger",
    "people",
    "probe",
    "profile",
    "summary",
]
