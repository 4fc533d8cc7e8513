"""Block Kit for the weekly summary: headline figures first, then who needs attention, then
the per-trader table. Pure functions: a WeeklyReport in, blocks out.

Within Slack's limits at any desk size: the table is a Block Kit ``table`` block with plain
column headers (https://docs.slack.dev/reference/block-kit/blocks/table-block : at most 100
rows of at most 20 cells), people who need attention first; what doesn't fit (rows, or the
message's text budget) is counted, and the CSV (*Download CSV*) has every trader."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.slack.blocks import (
    HEADER_TEXT,
    MESSAGE_CHARS,
    SECTION_BUDGET,
    Blocks,
    button,
    context_block,
    cut,
    escape,
    section,
    text_size,
)
from bot.slack.ids import Action, Block
from bot.summary.report import Metric, MetricKind, MetricValue, WeeklyReport

ATTENTION_LIMIT = 20
TABLE_ROWS = 100  # https://docs.slack.dev/reference/block-kit/blocks/table-block : at most 100 rows
TABLE_CELLS = 20  # ... of at most 20 cells


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
    names = report.names
    lines = [f"• {escape(names(a.user_id))} — {', '.join(a.reasons)}" for a in report.attention[:ATTENTION_LIMIT]]
    if len(report.attention) > ATTENTION_LIMIT:
        lines.append(f"…and {len(report.attention) - ATTENTION_LIMIT} more (see the table below and the CSV)")
    return lines


def table_order(report: WeeklyReport) -> list[str]:
    """Traders for the table: who needs attention first (in the report's order), then by name."""
    first = [a.user_id for a in report.attention]
    seen = set(first)
    rest = sorted((u for u in report.rows if u not in seen), key=report.names.sort_key)
    return [*first, *rest]


def _raw(text: str) -> dict[str, Any]:
    return {"type": "raw_text", "text": text or "—"}


def table_block(report: WeeklyReport, *, chars: int) -> tuple[dict[str, Any], int]:
    """The per-trader table (a ``table`` block, plain headers) within ``chars`` characters and
    Slack's row limit; (block, traders left out)."""
    columns = report.columns[: TABLE_CELLS - 1]
    rows: list[list[dict[str, Any]]] = [[_raw("Trader"), *(_raw(m.header) for m in columns)]]
    used = text_size(rows)
    order = table_order(report)
    for user in order:
        if len(rows) >= TABLE_ROWS:
            break
        row = report.rows[user]
        cells = [_raw(cut(report.names(user), 40)), *(_raw(cell(m, row.values.get(m.key))) for m in columns)]
        size = text_size(cells)
        if used + size > chars:
            break
        rows.append(cells)
        used += size
    settings = [{"is_wrapped": True}, *({"align": "right"} for _ in columns)]
    return {"type": "table", "rows": rows, "column_settings": settings}, len(order) - (len(rows) - 1)


def summary_text(report: WeeklyReport) -> str:
    """The notification text (and the fallback where blocks don't render)."""
    return (
        f"Weekly readiness for {report.desk_name}, {report.iso_week}: completion {percent(report.completion_rate)} "
        f"({change(report.completion_change)}), {len(report.attention)} trader(s) need attention, "
        f"{report.escalations.still_open} escalation(s) still open."
    )


def summary_blocks(report: WeeklyReport, *, with_download: bool = True) -> Blocks:
    """The summary within Slack's limits at any desk size (see the module doc)."""
    title = cut(f"Weekly readiness — {report.desk_name}, {report.iso_week}", HEADER_TEXT)
    blocks: Blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        section(headline(report)),
        context_block(f"{week_span(report)} · {calendar_note(report)}"),
    ]
    lines = attention_lines(report)
    if lines:
        text = "*Needs attention*\n" + "\n".join(lines)
        blocks.append(section(cut(text, SECTION_BUDGET)))
    else:
        blocks.append(section("*Needs attention:* nobody — every trader answered, unrestricted, with a recovery path."))
    if report.recovery_gaps:
        names = report.names
        gaps = [
            f"• {escape(names(g.user_id))} since {g.since:%a %d %b} ({g.days} trading day{'s' if g.days != 1 else ''})"
            for g in report.recovery_gaps[:ATTENTION_LIMIT]
        ]
        if len(report.recovery_gaps) > ATTENTION_LIMIT:
            gaps.append(f"…and {len(report.recovery_gaps) - ATTENTION_LIMIT} more")
        text = "*Missing recovery path* (no backup second factor)\n" + "\n".join(gaps)
        blocks.append(section(cut(text, SECTION_BUDGET)))
    blocks.append({"type": "divider"})
    blocks.append(context_block("Per trader this week (final answer of each day; people needing attention first):"))
    table, left_out = table_block(report, chars=MESSAGE_CHARS - text_size(blocks) - 400)
    blocks.append(table)
    if left_out:
        blocks.append(context_block(f"…and {left_out} more traders: *Download CSV* has every trader's every answer."))
    if with_download:
        blocks.append(
            {
                "type": "actions",
                "block_id": Block.SUMMARY_ACTIONS,
                "elements": [
                    button("Download CSV", Action.SUMMARY_DOWNLOAD_CSV, download_value(report.desk_id, report.iso_week))
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
