"""The one shape every report chart has (data -> mark -> encodings -> size -> titled Chart with
its numbers table), and the colours that mean the same thing on every page."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import yaml

from orchestration.report.inputs import nonempty
from orchestration.report.render import Chart
from orchestration.settings import Settings

W = 560  # default chart width (px)
H = 220
GOOD, BAD, NEUTRAL = "#31a354", "#d62728", "#4c78a8"
UNDECIDED = "#9aa5b1"  # people a rule could not decide (a column it reads is null)
# Segment colours: each configured segment (segments.yml) takes the palette slot its name
# hashes to, or the next free one (names in sorted order), so configured segments never share
# a colour and adding one moves at most the segments it collides with; a name beyond the
# palette or not configured (an old segment still in the history) keeps its plain hash slot.
PALETTE = (
    "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d",
    "#bab0ac", "#eeca3b", "#1f77b4", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#393b79",
)  # fmt: skip


def _slot(name: str) -> int:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % len(PALETTE)


def assign_colours(names) -> dict[str, str]:
    """Distinct colours for up to len(PALETTE) names, each from its hash slot or the next
    free one, in sorted-name order (so the result depends only on the set of names)."""
    taken: dict[int, str] = {}
    out = {}
    for name in sorted(set(names)):
        slot = _slot(name)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
            taken[slot] = name
        out[name] = PALETTE[slot]
    return out


@functools.lru_cache(maxsize=4)
def _configured(path: str) -> dict[str, str]:
    try:
        spec = yaml.safe_load(Path(path).read_text()) or {}
        names = [str(s["name"]) for s in spec.get("segments") or [] if isinstance(s, dict)]
    except (OSError, yaml.YAMLError, KeyError, AttributeError):
        return {}  # the report still draws (plain hash colours); segments check names the error
    return assign_colours(names)


def segment_colour(name: str) -> str:
    """The segment's colour on every chart and every run (see PALETTE)."""
    configured = _configured(str(Settings.from_env().segments_file))
    return configured.get(name) or PALETTE[_slot(name)]


def segment_scale(names) -> alt.Scale:
    domain = sorted({str(n) for n in names})
    return alt.Scale(domain=domain, range=[segment_colour(n) for n in domain])


def status_scale(good: str, bad: str) -> alt.Scale:
    return alt.Scale(domain=[good, bad], range=[GOOD, BAD])


def plot(
    title: str,
    data: pd.DataFrame,
    mark: str,
    *,
    table: pd.DataFrame | None = None,
    note: str = "",
    width: int = W,
    height: int = H,
    mark_args: dict[str, Any] | None = None,
    layers: tuple[alt.TopLevelMixin, ...] = (),
    facet: str | None = None,
    columns: int = 3,
    **encode: Any,
) -> Chart | None:
    """`alt.Chart(data).mark_<mark>(...).encode(...)` sized and titled, plus extra `layers`
    (rules, text) on top, as small multiples per `facet` field when given; None when there is
    no data (the page lists it as not shown)."""
    if not nonempty(data):
        return None
    chart = getattr(alt.Chart(data), f"mark_{mark}")(**(mark_args or {})).encode(**encode)
    for layer in layers:
        chart = chart + layer
    chart = chart.properties(width=width, height=height)
    if facet:
        chart = chart.facet(facet=alt.Facet(facet, title=None), columns=columns)
    return Chart(title, chart, data if table is None else table, note)


def vline(value: float, field: str, colour: str = BAD) -> alt.Chart:
    """A dashed reference line at x = value (a threshold, a minimum)."""
    return (
        alt.Chart(pd.DataFrame({field: [value]}))
        .mark_rule(color=colour, strokeDash=[4, 3])
        .encode(x=f"{field}:Q")
    )
