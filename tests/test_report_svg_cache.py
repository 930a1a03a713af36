"""Report charts reused from the SVG cache are exactly what rendering gives: a chart whose
data changes is rendered again, and an SVG with a per-process id (a gradient legend) is
never reused."""

from __future__ import annotations

import altair as alt
import pandas as pd

from orchestration.report.render import _render, svg_of
from orchestration.report.svg_cache import SvgCache


def _bars(values: list[int]) -> alt.Chart:
    data = pd.DataFrame({"segment": ["a", "b", "c"], "users": values})
    return alt.Chart(data).mark_bar().encode(x="segment:N", y="users:Q")


def test_unchanged_chart_is_reused_and_a_changed_one_rendered(tmp_path):
    cache = SvgCache.for_report(tmp_path / "report")
    first = svg_of(_bars([1, 2, 3]), cache)
    assert (cache.rendered, cache.hits) == (1, 0)
    again = SvgCache.for_report(tmp_path / "report")  # the next build
    assert svg_of(_bars([1, 2, 3]), again) == first and again.hits == 1
    changed = svg_of(_bars([1, 2, 4]), again)
    assert changed == _render(_bars([1, 2, 4]).to_dict()) != first
    assert (again.rendered, again.hits) == (1, 1)
    again.prune()  # only what this build used is kept
    assert len(list(again.directory.iterdir())) == 2


def test_svg_with_ids_is_never_reused(tmp_path):
    data = pd.DataFrame({"x": [1, 2, 3], "y": [1, 2, 3], "v": [0.1, 0.5, 0.9]})
    chart = alt.Chart(data).mark_point().encode(x="x:Q", y="y:Q", color="v:Q")  # gradient
    cache = SvgCache.for_report(tmp_path / "report")
    svg = svg_of(chart, cache)
    assert 'id="gradient_' in svg
    assert svg_of(chart, cache) and (cache.rendered, cache.hits) == (2, 0)
