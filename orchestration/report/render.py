"""HTML for the report: charts are Altair (Vega-Lite) specs rendered to inline SVG by
vl-convert, so a page has no script and loads nothing; each chart carries its numbers in a
`<details>` table beneath it."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import altair as alt
import pandas as pd

from orchestration.report.svg_cache import SvgCache

VL_VERSION = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
MAX_TABLE_ROWS = 500

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
header{background:#1f2933;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:17px;margin:0}
header nav a{color:#cbd2d9;text-decoration:none;margin-right:14px}
header nav a.current{color:#fff;font-weight:600;border-bottom:2px solid #7bb3ff}
header .meta{color:#9aa5b1;font-size:12px;margin-left:auto}
main{padding:16px 24px;max-width:1400px}
h2{font-size:16px;margin:24px 0 6px}
p.lead{color:#52606d;margin:4px 0 12px}
.grid{display:flex;flex-wrap:wrap;gap:16px}
figure.chart{background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:12px;margin:0;max-width:100%;overflow-x:auto}
figure.chart figcaption{font-weight:600;margin-bottom:2px}
figure.chart .note{color:#616e7c;font-size:12px;margin-bottom:6px;max-width:720px}
details{margin-top:6px}
summary{cursor:pointer;color:#2463eb;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin-top:6px}
th,td{border:1px solid #e4e7eb;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f4f8;position:sticky;top:0}
td.t,th.t{text-align:left}
.tablewrap{max-height:420px;overflow:auto}
.kpis{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0 4px}
.kpi{background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:8px 14px;min-width:150px}
.kpi b{display:block;font-size:20px}
.kpi span{color:#616e7c;font-size:12px}
.kpi.bad b{color:#c81e1e}.kpi.ok b{color:#057a55}
.empty{background:#fff8e1;border:1px solid #f5d97a;border-radius:6px;padding:8px 12px;color:#6b5200}
"""


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, pd.Timestamp):
        return (
            value.strftime("%Y-%m-%d %H:%M")
            if value.hour or value.minute
            else value.date().isoformat()
        )
    return str(value)


def html_table(frame: pd.DataFrame, max_rows: int = MAX_TABLE_ROWS) -> str:
    shown = frame.head(max_rows)
    text_cols = {c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(
        f'<th class="{"t" if c in text_cols else ""}">{html.escape(str(c))}</th>'
        for c in frame.columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"t" if c in text_cols else ""}">{html.escape(_fmt(v))}</td>'
            for c, v in zip(frame.columns, row, strict=True)
        )
        + "</tr>"
        for row in shown.itertuples(index=False, name=None)
    )
    more = (
        f"<p class='note'>first {max_rows} of {len(frame):,} rows</p>"
        if len(frame) > max_rows
        else ""
    )
    return f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{more}'


def svg_of(chart: alt.TopLevelMixin, cache: SvgCache | None = None) -> str:
    spec = chart.to_dict()
    if cache is not None:
        return cache.svg(spec, VL_VERSION, _render)
    return _render(spec)


def _render(spec: dict) -> str:
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(spec, vl_version=VL_VERSION)
    return re.sub(r"^<\?xml[^>]*>\s*", "", svg)


@dataclass
class Chart:
    title: str
    chart: alt.TopLevelMixin
    data: pd.DataFrame
    note: str = ""

    def html(self, slug: str, cache: SvgCache | None = None) -> str:
        rows = len(self.data)
        return (
            f'<figure class="chart" id="{slug}" data-rows="{rows}">'
            f"<figcaption>{html.escape(self.title)}</figcaption>"
            + (f'<div class="note">{html.escape(self.note)}</div>' if self.note else "")
            + svg_of(self.chart, cache)
            + f"<details><summary>Numbers ({rows:,} rows)</summary>{html_table(self.data)}</details>"
            "</figure>"
        )


@dataclass
class Page:
    slug: str
    title: str
    lead: str
    blocks: list[str | Chart] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return "index.html" if self.slug == "overview" else f"{self.slug}.html"

    def add(self, item: str | Chart | None, missing: str = "") -> None:
        if item is None:
            if missing:
                self.missing.append(missing)
            return
        self.blocks.append(item)

    @property
    def charts(self) -> list[Chart]:
        return [b for b in self.blocks if isinstance(b, Chart)]

    def html(
        self,
        pages: list[Page],
        generated: datetime,
        warehouse: str,
        cache: SvgCache | None = None,
    ) -> str:
        nav = "".join(
            f'<a href="{p.filename}" class="{"current" if p.slug == self.slug else ""}">'
            f"{html.escape(p.title)}</a>"
            for p in pages
        )
        parts = []
        for n, block in enumerate(self.blocks):
            is_chart = isinstance(block, Chart)
            parts.append(block.html(f"{self.slug}-{n}", cache) if is_chart else block)
        if self.missing:
            parts.append(
                '<div class="empty"><b>Not shown yet</b> (no data in the warehouse):<ul>'
                + "".join(f"<li>{html.escape(m)}</li>" for m in self.missing)
                + "</ul></div>"
            )
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            # no external fetches, ever: not even a favicon request
            "<link rel='icon' href='data:,'>"
            f"<title>segflow · {html.escape(self.title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>segflow report</h1><nav>{nav}</nav>"
            f"<span class='meta'>built {generated.astimezone(UTC):%Y-%m-%d %H:%M} UTC · "
            f"{html.escape(warehouse)}</span></header>"
            f"<main><h2 style='margin-top:4px'>{html.escape(self.title)}</h2>"
            f"<p class='lead'>{html.escape(self.lead)}</p>"
            f"<div class='grid'>{''.join(parts)}</div></main></body></html>"
        )


def section(title: str, text: str = "") -> str:
    note = f"<p class='lead'>{html.escape(text)}</p>" if text else ""
    return f"<div style='flex-basis:100%'><h2>{html.escape(title)}</h2>{note}</div>"


def kpis(items: list[tuple[str, str, str]]) -> str:
    """(label, value, state) with state '', 'ok' or 'bad'."""
    return (
        "<div class='kpis' style='flex-basis:100%'>"
        + "".join(
            f"<div class='kpi {state}'><b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>"
            for label, value, state in items
        )
        + "</div>"
    )


def table_block(title: str, frame: pd.DataFrame, note: str = "") -> str:
    return (
        f"<figure class='chart table-only' data-rows='{len(frame)}'><figcaption>{html.escape(title)}</figcaption>"
        + (f"<div class='note'>{html.escape(note)}</div>" if note else "")
        + html_table(frame)
        + "</figure>"
    )
