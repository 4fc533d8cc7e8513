"""TEMPORARY: the three names two files owned by other engineers still import from here
(``bot/escalation/jobs.py``: ``run_pass``; ``bot/profile/service.py``: ``open_standing``,
``resolve_automatically``). The escalation service is split into ``rules``, ``opening``,
``resolving``, ``notices``, ``passes``, ``actions`` and ``queries``; delete this module once
those two import ``bot.escalation.passes``, ``.opening`` and ``.resolving`` instead."""

from bot.escalation.opening import open_standing
from bot.escalation.passes import run_pass
from bot.escalation.resolving import resolve_automatically

__all__ = ["open_standing", "resolve_automatically", "run_pass"]
