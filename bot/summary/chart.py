"""The weekly heatmap: trader x weekday, as PNG bytes. Matplotlib's Agg canvas only — no
pyplot, no display — so it renders in a server process and in threads alike."""

from __future__ import annotations

import io

from bot.summary.report import DayOutcome, WeeklyReport

DPI = 100
ORDER: tuple[DayOutcome, ...] = (
    DayOutcome.ON_TIME,
    DayOutcome.LATE,
    DayOutcome.PROBLEM,
    DayOutcome.MISSED,
    DayOutcome.PENDING,
    DayOutcome.NOT_POSTED,
    DayOutcome.HOLIDAY,
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
}
LABELS = {
    DayOutcome.ON_TIME: "ready on time",
    DayOutcome.LATE: "late",
    DayOutcome.PROBLEM: "problem",
    DayOutcome.MISSED: "missed",
    DayOutcome.PENDING: "still open",
    DayOutcome.NOT_POSTED: "not posted",
    DayOutcome.HOLIDAY: "holiday",
}


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


def render_heatmap(report: WeeklyReport, names: dict[str, str] | None = None) -> bytes:
    """PNG bytes. ``names`` maps user IDs to display names when known."""
    # matplotlib is imported here, not at module import: it costs ~1 s of every process's
    # start-up (serve, every CLI command) and only the weekly summary needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    names = names or {}
    users = list(report.rows)
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
            label += f"\n{holiday_names[d][:18]}"
        elif d in report.early_closes:
            label += "\nearly close"
        xlabels.append(label)
    ax.set_xticks(range(len(days)), labels=xlabels, fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(users)), labels=[names.get(u, u) for u in users], fontsize=label_size)
    ax.set_xticks([x - 0.5 for x in range(1, len(days))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, n)], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    for x, d in enumerate(days):
        if d in holiday_names:
            ax.text(x, (n - 1) / 2, "market closed", ha="center", va="center", rotation=90, fontsize=9, color="#334")
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(f"{report.desk_name} — readiness, week {report.iso_week}", fontsize=12, y=0.995)
    fig.legend(
        handles=[Patch(facecolor=COLOURS[o], edgecolor="#999", label=LABELS[o]) for o in ORDER],
        loc="lower center",
        ncol=len(ORDER),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.06 * 8 / figure_size(len(users))[1], 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
