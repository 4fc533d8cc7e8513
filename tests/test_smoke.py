from __future__ import annotations

from datetime import date

from bot import jobs
from tests.factories import make_desk
from tests.fakes.slack import FakeSlack
from tests.harness import Bot


def test_post_and_confirm(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    result = jobs.post_checklist(
        bot.runtime.engine, bot.client, desk_name="equities", day=date(2026, 11, 25), now=bot.clock()
    )
    assert result.ts
    r = bot.click("UTRD1", "checklist_confirm_all", str(result.run_id), message_ts=result.ts)
    assert r.status_code == 200
    bot.settle()
    updates = fake_slack.of("chat.update")
    assert updates and "1 ready" in updates[-1].params["text"]
