"""The weekly heatmap: trader x weekday, as PNG bytes. Matplotlib's Agg canvas only — no
pyplot, no display — so it renders in a server process and in threads alike.

Names and holiday names are user text: every label is drawn as plain text (``$`` escaped,
so ``$\\evil$`` is a name, not a formula), and characters the font has no glyph for (emoji,
most scripts DejaVu Sans lacks) are left out rather than drawn as boxes with a warning.
"""

from __future__ import annotations

import functools
import io

from bot.summary.report import DayOutcome, WeeklyReport
from bot.text import clean

DPI = 100
ORDER: tuple[DayOutcome, ...] = (
    DayOutcome.ON_TIME,
    DayOutcome.LATE,
    DayOutcome.PROBLEM,
    DayOutcome.MISSED,
    DayOutcome.PENDING,
    DayOutcome.NOT_POSTED,
    DayOutcome.HOLIDAY,
    DayOutcome.AWAY,
)
# Colour-blind-safe choices (Okabe-Ito) and greys for "no data".
COLOURS = {
    DayOutcome.ON_TIME: "#009E73",
    DayOutcome.LATE: "#E69F00",
    DayOutcome.PROBLEM: "#D55E00",
    DayOutcome.MISSED: "#333333",
    DayOutcome.PENDING: "#FFFFFF",
    DayOutcome.NOT_POSTED: "#DDDDDD",
    DayOutcome.HOLIDAY: "#B8C7D9",
    DayOutcome.AWAY: "#56B4E9",
}
LABELS = {
    DayOutcome.ON_TIME: "ready on time",
    DayOutcome.LATE: "late",
    DayOutcome.PROBLEM: "problem",
    DayOutcome.MISSED: "missed",
    DayOutcome.PENDING: "still open",
    DayOutcome.NOT_POSTED: "not posted",
    DayOutcome.HOLIDAY: "holiday",
    DayOutcome.AWAY: "away",
}
MAX_ROWS = 60  # a readable image: beyond this, the traders needing attention first


def figure_size(traders: int) -> tuple[float, float]:
    """Inches: the height grows with the number of traders (about 0.3 in a row)."""
    return 8.0, 2.4 + 0.3 * max(traders, 1)


def alt_text(report: WeeklyReport) -> str:
    counts = {o: 0 for o in ORDER}
    for row in report.rows.values():
        for outcome in row.days.values():
            counts[outcome] += 1
    parts = [f"{counts[o]} {LABELS[o]}" for o in ORDER[:4]]
    return (
        f"Heatmap of {len(report.rows)} traders by weekday for {report.desk_name}, {report.iso_week}: "
        + ", ".join(parts)
        + " trader-days."
    )


@functools.cache
def _glyphs() -> frozenset[int]:
    """The code points the default font can draw."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(font_manager.findfont(font_manager.FontProperties())).get_charmap())


def plain_label(text: str, fallback: str = "?") -> str:
    """``text`` fit for a chart label: invisible and control characters and characters the
    font lacks left out, spaces collapsed, ``$`` escaped (matplotlib reads text between two
    ``$`` as mathtext, and ``\\$`` is its literal dollar: a tick label created at draw time
    can't be told ``parse_math=False``); ``fallback`` when nothing is left."""
    glyphs = _glyphs()
    kept = "".join(ch if ord(ch) in glyphs and ch.isprintable() else " " for ch in clean(text))
    return " ".join(kept.split()).replace("$", r"\$") or fallback


def chart_rows(report: WeeklyReport) -> list[str]:
    """The traders drawn: all of them up to ``MAX_ROWS``, else who needs attention first."""
    first = [a.user_id for a in report.attention]
    seen = set(first)
    rest = sorted((u for u in report.rows if u not in seen), key=report.names.sort_key)
    order = [*first, *rest]
    return order[:MAX_ROWS] if len(order) > MAX_ROWS else sorted(order, key=report.names.sort_key)


def render_heatmap(report: WeeklyReport) -> bytes:
    """PNG bytes; rows labelled with people's names (IDs only for users the cache doesn't know)."""
    names = report.names
    users = chart_rows(report)
    # matplotlib is imported here, not at module import: it costs ~1 s of every process's
    # start-up (serve, every CLI command) and only the weekly summary needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    days = report.weekdays
    index = {o: i for i, o in enumerate(ORDER)}
    grid = [[index[report.rows[u].days.get(d, DayOutcome.NOT_POSTED)] for d in days] for u in users] or [
        [index[DayOutcome.NOT_POSTED] for _ in days]
    ]
    n = max(len(users), 1)
    label_size = 10 if n <= 20 else 8 if n <= 45 else 7

    fig = Figure(figsize=figure_size(len(users)), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(
        grid,
        cmap=ListedColormap([COLOURS[o] for o in ORDER]),
        vmin=-0.5,
        vmax=len(ORDER) - 0.5,
        aspect="auto",
        interpolation="nearest",
    )
    holiday_names = dict(report.holidays)
    xlabels = []
    for d in days:
        label = f"{d:%a %d %b}"
        if d in holiday_names:
            label += f"\n{plain_label(holiday_names[d][:18], '')}"
        elif d in report.early_closes:
            label += "\nearly close"
        xlabels.append(label)
    ax.set_xticks(range(len(days)), labels=xlabels, fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(users)), labels=[plain_label(names(u), u) for u in users], fontsize=label_size)
    ax.set_xticks([x - 0.5 for x in range(1, len(days))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, n)], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    for x, d in enumerate(days):
        if d in holiday_names:
            ax.text(x, (n - 1) / 2, "market closed", ha="center", va="center", rotation=90, fontsize=9, color="#334")
    for spine in ax.spines.values():
        spine.set_visible(False)
    shown = "" if len(users) == len(report.rows) else f" ({len(users)} of {len(report.rows)}, needing attention first)"
    fig.suptitle(f"{plain_label(report.desk_name)} — readiness, week {report.iso_week}{shown}", fontsize=12, y=0.995)
    fig.legend(
        handles=[Patch(facecolor=COLOURS[o], edgecolor="#999", label=LABELS[o]) for o in ORDER],
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.8 / figure_size(len(users))[1], 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
