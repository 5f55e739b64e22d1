"""Figures of a study report, drawn with matplotlib's object API (``Figure``, never
pyplot) so that no global figure state is shared between requests or threads.

Each plot function takes a :class:`analysis.services.StudyReport` and returns a
``Figure``; :func:`render` turns one into SVG (text kept as text, so condition names
are searchable and the file stays small) or PNG bytes. With no data a plot still
returns a figure that says "No data yet" rather than failing.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.services import StudyReport

matplotlib.use("Agg")  # no display on servers; harmless when already selected

WIDTH, HEIGHT = 6.4, 3.6
REFERENCE_COLOUR = "#1f77b4"
OTHER_COLOUR = "#d62728"


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH, HEIGHT), layout="constrained")
    return figure, figure.add_subplot()


def _no_data(title: str, reason: str = "No data yet") -> Figure:
    figure, axes = _figure()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, reason, ha="center", va="center", fontsize=14, color="#555")
    return figure


def _colour(report: StudyReport, condition: str) -> str:
    return REFERENCE_COLOUR if condition == report.reference else OTHER_COLOUR


def credible_share(report: StudyReport) -> Figure:
    """Share judged credible per condition, point and 95% Wilson interval."""
    title = f'Share answering yes to "{report.binary_question or "-"}" (95% Wilson interval)'
    table = report.proportions
    if table.empty:
        return _no_data(title)
    figure, axes = _figure()
    positions = np.arange(len(table))
    share = table["share"].to_numpy(dtype=float)
    errors = np.vstack(
        [
            share - table["ci_low"].to_numpy(dtype=float),
            table["ci_high"].to_numpy(dtype=float) - share,
        ]
    )
    for i, row in enumerate(table.itertuples(index=False)):
        axes.errorbar(
            [i],
            [share[i]],
            yerr=errors[:, i : i + 1],
            fmt="o",
            capsize=6,
            color=_colour(report, str(row.condition)),
        )
    axes.set_xticks(
        positions, [f"{c}\n(n={n})" for c, n in zip(table["condition"], table["n"], strict=True)]
    )
    axes.set_ylim(0, 1)
    axes.set_ylabel("Share")
    axes.set_xlim(-0.5, len(table) - 0.5)
    axes.set_title(title, fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    return figure


def index_distribution(report: StudyReport) -> Figure:
    """The credibility index (1-10) per condition: box plot with every rating jittered
    over it (fixed seed, so the same data gives the same picture)."""
    title = "Credibility index (1-10) per condition"
    index = report.index
    if index.empty:
        reason = (
            "No data yet"
            if report.has_index_items
            else "The study does not ask believable, accurate and clear"
        )
        return _no_data(title, reason)
    conditions = list(dict.fromkeys(report.index_means["condition"]))
    values = [index.loc[index["condition"] == c, "index"].to_numpy(dtype=float) for c in conditions]
    figure, axes = _figure()
    axes.boxplot(values, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, (condition, points) in enumerate(zip(conditions, values, strict=True), start=1):
        jitter = rng.uniform(-0.15, 0.15, len(points))
        axes.scatter(i + jitter, points, s=12, alpha=0.6, color=_colour(report, condition))
    axes.set_xticks(range(1, len(conditions) + 1), conditions)
    axes.set_ylim(0.5, 10.5)
    axes.set_ylabel("Index")
    axes.set_title(title, fontsize=10)
    return figure


def article_credibility(report: StudyReport, top: int = 20) -> Figure:
    """Generated articles ranked by the share of ratings that judged them credible:
    which ones fooled people most (at most ``top``, highest first)."""
    title = "Generated articles judged credible most often"
    key = report.binary_question
    trials = report.responses
    if key is None or trials.empty or key not in trials.columns:
        return _no_data(title)
    generated = trials.loc[(trials["article_origin"] != "real") & trials[key].notna()]
    if generated.empty:
        return _no_data(title)
    ranked = (
        generated.groupby("article_id")
        .agg(share=(key, "mean"), n=(key, "size"), condition=("condition", "first"))
        .sort_values(["share", "n"], ascending=[False, False])
        .head(top)
    )
    figure = Figure(figsize=(WIDTH, max(2.5, 0.3 * len(ranked) + 1.2)), layout="constrained")
    axes = figure.add_subplot()
    labels = [
        f"article {a} · {c} (n={n})"
        for a, c, n in zip(ranked.index, ranked["condition"], ranked["n"], strict=True)
    ]
    axes.barh(range(len(ranked)), ranked["share"], color=OTHER_COLOUR)
    axes.set_yticks(range(len(ranked)), labels)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel(f'Share answering yes to "{key}"')
    axes.set_title(title, fontsize=10)
    return figure


def dwell_time(report: StudyReport) -> Figure:
    """Seconds from an article's first showing to its answer against the rating given
    (the credibility index when the study has one, else the yes/no answer)."""
    title = "Time on the article against the rating"
    trials = report.responses
    if not report.index.empty:
        rating = report.index[["participant_id", "article_id", "index"]].rename(
            columns={"index": "rating"}
        )
        data = (
            trials.merge(rating, on=["participant_id", "article_id"])
            if not trials.empty
            else trials
        )
        label = "Credibility index (1-10)"
    elif report.binary_question and report.binary_question in trials.columns:
        data = trials.assign(rating=trials[report.binary_question])
        label = f'"{report.binary_question}" (0 = no, 1 = yes)'
    else:
        return _no_data(title)
    if data.empty:
        return _no_data(title)
    data = data.loc[data["seconds"].notna() & data["rating"].notna()]
    if data.empty:
        return _no_data(title, "No timed answers yet")
    figure, axes = _figure()
    rng = np.random.default_rng(0)
    for condition, group in data.groupby("condition", sort=True):
        x = group["rating"].to_numpy(dtype=float) + rng.uniform(-0.12, 0.12, len(group))
        axes.scatter(
            x,
            group["seconds"],
            s=14,
            alpha=0.6,
            label=str(condition),
            color=_colour(report, str(condition)),
        )
    axes.set_xlabel(label)
    axes.set_ylabel("Seconds (first shown to answered)")
    axes.legend(title="Condition")
    axes.set_title(title, fontsize=10)
    return figure


PLOTS: dict[str, Callable[[StudyReport], Figure]] = {
    "credible": credible_share,
    "index": index_distribution,
    "articles": article_credibility,
    "dwell": dwell_time,
}
PLOT_TITLES = {
    "credible": "Credible share per condition",
    "index": "Credibility index per condition",
    "articles": "Which generated articles fooled people most",
    "dwell": "Time on the article against the rating",
}


def render(figure: Figure, fmt: str = "svg") -> bytes:
    """The figure as SVG (text kept as ``<text>``, no timestamp, so the same data gives
    the same bytes) or PNG (100 dpi)."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"Unknown format {fmt!r}: use svg or png.")
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "credence"}):
        if fmt == "svg":
            figure.savefig(buffer, format="svg", metadata={"Date": None})
        else:
            figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def plot_bytes(report: StudyReport, name: str, fmt: str = "svg") -> bytes:
    """Draw the named plot (one of ``PLOTS``) and render it. KeyError for unknown names.
    Labels are people's text (condition names, question keys): drawn literally, never
    read as matplotlib's ``$...$`` mathematics, which fails on unknown symbols (a 500
    for the whole results page) and is not what anyone typed. In SVG, matplotlib writes
    them as escaped ``<text>``."""
    with matplotlib.rc_context({"text.parse_math": False}):
        return render(PLOTS[name](report), fmt)


def inline_svg(report: StudyReport, name: str) -> str:
    """The plot as an SVG element to put inside an HTML page (XML prolog and DOCTYPE
    removed)."""
    text = plot_bytes(report, name, "svg").decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text
