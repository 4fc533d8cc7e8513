"""Block Kit for the weekly summary: headline figures first, then who needs attention, then
the per-trader table. Pure functions: a WeeklyReport in, blocks out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.slack.blocks import context_block, section
from bot.slack.ids import Action, Block
from bot.summary.report import Metric, MetricKind, MetricValue, WeeklyReport

Blocks = list[dict[str, Any]]
SECTION_LIMIT = 2900  # Slack allows 3000 characters in a section's text
ATTENTION_LIMIT = 20


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    minutes = round(value.total_seconds() / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def change(points: float | None) -> str:
    if points is None:
        return "no figure for last week"
    if abs(points) < 0.5:
        return "unchanged from last week"
    arrow = "▲" if points > 0 else "▼"
    return f"{arrow} {abs(points):.0f} pts vs last week"


def cell(metric: Metric, value: MetricValue) -> str:
    if value is None:
        return "—"
    if metric.kind is MetricKind.DURATION and isinstance(value, timedelta):
        return duration(value)
    if metric.kind is MetricKind.PERCENT and isinstance(value, float):
        return percent(value)
    return str(value)


def week_span(report: WeeklyReport) -> str:
    first, last = report.weekdays[0], report.weekdays[-1]
    return f"{first:%a %d %b} – {last:%a %d %b %Y}"


def headline(report: WeeklyReport) -> str:
    esc = report.escalations
    return (
        f"*Completion {percent(report.completion_rate)}* ({change(report.completion_change)}) · "
        f"*ready on time {percent(report.on_time_rate)}* · "
        f"*escalations* {esc.opened} opened, {esc.acknowledged} acknowledged "
        f"(median {duration(esc.median_to_acknowledge)}), {esc.resolved} resolved, *{esc.still_open} still open*"
    )


def calendar_note(report: WeeklyReport) -> str:
    parts = [f"{len(report.posted_days)} checklists over {len(report.trading_days)} trading days"]
    parts += [f"{d:%a %d %b}: market closed ({name})" for d, name in report.holidays]
    parts += [f"{d:%a %d %b}: early close" for d in report.early_closes]
    return " · ".join(parts)


def attention_lines(report: WeeklyReport) -> list[str]:
    lines = [f"• <@{a.user_id}> — {', '.join(a.reasons)}" for a in report.attention[:ATTENTION_LIMIT]]
    if len(report.attention) > ATTENTION_LIMIT:
        lines.append(f"…and {len(report.attention) - ATTENTION_LIMIT} more (see the table below)")
    return lines


def table_chunks(report: WeeklyReport) -> list[str]:
    """The per-trader table as monospace chunks that each fit one section."""
    headers = ["trader", *(m.header for m in report.columns)]
    body = [[user, *(cell(m, row.values.get(m.key)) for m in report.columns)] for user, row in report.rows.items()]
    widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    head = line(headers)
    chunks: list[str] = []
    current = [head]
    for r in body:
        candidate = line(r)
        if sum(len(x) + 1 for x in current) + len(candidate) + 8 > SECTION_LIMIT:
            chunks.append("```" + "\n".join(current) + "```")
            current = [head]
        current.append(candidate)
    chunks.append("```" + "\n".join(current) + "```")
    return chunks


def summary_text(report: WeeklyReport) -> str:
    """The notification text (and the fallback where blocks don't render)."""
    return (
        f"Weekly readiness for {report.desk_name}, {report.iso_week}: completion {percent(report.completion_rate)} "
        f"({change(report.completion_change)}), {len(report.attention)} trader(s) need attention, "
        f"{report.escalations.still_open} escalation(s) still open."
    )


def summary_blocks(report: WeeklyReport, *, with_download: bool = True) -> Blocks:
    blocks: Blocks = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"Weekly readiness — {report.desk_name}, {report.iso_week}"[:150]},
        },
        section(headline(report)),
        context_block(f"{week_span(report)} · {calendar_note(report)}"),
    ]
    lines = attention_lines(report)
    if lines:
        text = "*Needs attention*\n" + "\n".join(lines)
        blocks.append(section(text[:SECTION_LIMIT]))
    else:
        blocks.append(section("*Needs attention:* nobody — every trader answered, unrestricted, with a recovery path."))
    if report.recovery_gaps:
        gaps = [
            f"• <@{g.user_id}> since {g.since:%a %d %b} ({g.days} trading day{'s' if g.days != 1 else ''})"
            for g in report.recovery_gaps[:ATTENTION_LIMIT]
        ]
        blocks.append(section("*Missing recovery path* (no backup second factor)\n" + "\n".join(gaps)))
    blocks.append({"type": "divider"})
    blocks.append(context_block("Per trader this week (final answer of each day):"))
    blocks += [section(chunk) for chunk in table_chunks(report)[:30]]
    if with_download:
        blocks.append(
            {
                "type": "actions",
                "block_id": Block.SUMMARY_ACTIONS,
                "elements": [
                    {
                        "type": "button",
                        "action_id": Action.SUMMARY_DOWNLOAD_CSV,
                        "text": {"type": "plain_text", "text": "Download CSV"},
                        "value": download_value(report.desk_id, report.iso_week),
                    }
                ],
            }
        )
    return blocks


def preview_text(report: WeeklyReport) -> str:
    """The summary as plain text for a terminal (``preflight summary post --preview``)."""
    lines = [summary_text(report), ""]
    for block in summary_blocks(report, with_download=False):
        if block["type"] in ("header", "section"):
            lines.append(str(block["text"]["text"]))
        elif block["type"] == "context":
            lines += [str(e.get("text", "")) for e in block["elements"]]
    return "\n".join(lines)


def download_value(desk_id: int, iso_week: str) -> str:
    return f"{desk_id}|{iso_week}"


def parse_download_value(value: str) -> tuple[int, str] | None:
    desk, _, week = value.partition("|")
    return (int(desk), week) if desk.isdigit() and week else None


REFUSAL = "The weekly summary is for the desk's managers; you're not a manager of a desk."
