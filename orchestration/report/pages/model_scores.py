"""The Models page's charts of today's scores: the churn champion's calibration and gains on
outcomes observed since, the score distribution, the bands and, for the band campaigns act on,
the reasons in words."""

from __future__ import annotations

import altair as alt
import pandas as pd

from contracts.models import KINDS
from orchestration.activation.reason_text import ACTION_BAND, DIRECTION, banded_kinds, plain_code
from orchestration.report.charts import W, plot
from orchestration.report.inputs import Warehouse, nonempty
from orchestration.report.render import Chart, Page

DIAGONAL = pd.DataFrame({"x": [0, 1], "y": [0, 1]})


def calibration(page: Page, wh: Warehouse) -> None:
    if not wh.has("user_scores", "ml_churn_training"):
        return
    churn = KINDS["churn"]
    cal = wh.df(
        # ties in p are cut by a hash of (user, day): the same deciles on every build (DuckDB's
        # order among equal p varied, and with it the boundary deciles' observed rate)
        f"with j as (select s.{churn.score_column} as p, t.{churn.label}::int as y, "
        "hash(s.user_id, s.score_date) as tie "
        f"from main.user_scores s join main.{churn.training_table} t "
        "on t.user_id = s.user_id and t.snapshot_date = s.score_date "
        f"where s.{churn.score_column} is not null and t.{churn.label} is not null"
        f"{_on_days(wh, churn.training_table)}), "
        "d as (select *, ntile(10) over (order by p, tie) as decile from j) "
        "select decile, count(*) as users, avg(p) as mean_predicted, avg(y) as observed_rate, "
        "sum(y) as churned from d group by decile order by decile"
    )
    if not nonempty(cal):
        page.missing.append(
            "calibration and gains (no scored day has an observed churn outcome yet: its "
            "horizon, SEGFLOW_CHURN_HORIZON_DAYS, has not passed)"
        )
        return
    line = alt.Chart(DIAGONAL).mark_line(color="#999", strokeDash=[4, 3]).encode(x="x:Q", y="y:Q")
    pts = (
        alt.Chart(cal)
        .mark_line(point=True)
        .encode(
            x=alt.X("mean_predicted:Q", title="mean predicted churn"),
            y=alt.Y("observed_rate:Q", title="observed churn rate"),
        )
    )
    page.add(
        Chart(
            "Churn champion calibration by decile (scores vs churn observed over the horizon)",
            (line + pts).properties(width=300, height=260),
            cal,
        )
    )
    gains = cal.sort_values("decile", ascending=False).reset_index(drop=True)
    gains["share_of_users"] = gains["users"].cumsum() / gains["users"].sum()
    total = gains["churned"].sum()
    gains["share_of_churners"] = gains["churned"].cumsum() / total if total else 0.0
    origin = {
        "decile": 11,
        "users": 0,
        "churned": 0,
        "share_of_users": 0.0,
        "share_of_churners": 0.0,
    }
    g2 = pd.concat([pd.DataFrame([origin]), gains[list(origin)]], ignore_index=True)
    page.add(
        plot("Churn champion cumulative gains", g2, "line", width=300, height=260,
             mark_args={"point": True}, layers=(line,),
             x=alt.X("share_of_users:Q", title="share of users, highest scores first"),
             y=alt.Y("share_of_churners:Q", title="share of churners"))
    )  # fmt: skip


def _on_days(wh: Warehouse, training_table: str) -> str:
    """` and s.score_date in (<the training snapshot days>)`: the join keeps only those days
    anyway; as literals they let DuckDB skip the other days' user_scores row groups (11M rows
    at 100k users x 180 days, ~22 snapshot days)."""
    days = wh.conn.execute(
        f"select distinct snapshot_date from main.{training_table} "
        "where snapshot_date is not null order by 1"
    ).fetchall()
    if not days:
        return ""
    return " and s.score_date in (" + ", ".join(f"date '{d.isoformat()}'" for (d,) in days) + ")"


def scores(page: Page, wh: Warehouse) -> None:
    if not wh.has("user_scores"):
        page.missing.append("scores and bands (no main.user_scores)")
        return
    columns = [c for spec in KINDS.values() for c in (spec.score_column, spec.band_column) if c]
    s = wh.df(
        f"select {', '.join(columns)} from main.user_scores "
        f"where score_date = {wh.latest('user_scores', 'score_date')}"
    )
    if not nonempty(s):
        page.missing.append("score distribution (user_scores is empty)")
        return
    if s["churn_probability"].notna().any():
        hist = s[["churn_probability"]].dropna()
        hist["bin"] = (hist["churn_probability"] * 20).clip(upper=19.999).astype(int) / 20
        counts = hist.groupby("bin", as_index=False).size()
        counts = counts.rename(columns={"size": "users", "bin": "churn_probability_from"})
        counts["upper"] = counts["churn_probability_from"] + 0.05
        page.add(
            plot("Distribution of churn scores (latest day)", counts, "bar", width=W - 200,
                 height=180, x=alt.X("churn_probability_from:Q", bin="binned", title="churn probability"),
                 x2="upper:Q", y="users:Q")
        )  # fmt: skip
    parts = [
        s.groupby(c, as_index=False).size().rename(columns={c: "band", "size": "users"}).assign(score=spec.kind)
        for spec in KINDS.values()
        if (c := spec.band_column) and s[c].notna().any()
    ]  # fmt: skip
    if not parts:  # no champion scored today: the page says so above, nothing to draw here
        page.missing.append("bands (no model has scored anyone yet)")
        return
    bands = pd.concat(parts, ignore_index=True)[["score", "band", "users"]]
    page.add(
        plot("Bands (latest day)", bands, "bar", width=W - 200, height=70,
             y=alt.Y("score:N", title=None),
             x=alt.X("users:Q", stack="normalize", title="share of users"), color="band:N")
    )  # fmt: skip


def action_reasons(page: Page, wh: Warehouse) -> None:
    """Per banded kind: among today's users in its action band, how many carry each reason,
    in words (reason_text.py); users in other bands are not counted, their codes are noise."""
    kinds = banded_kinds()
    if not wh.has("user_scores"):
        return
    latest = wh.latest("user_scores", "score_date")
    selects = " union all ".join(
        f"select '{kind}' as kind, trim(code) as code, count(*) as users from main.user_scores, "
        f"unnest(string_split({reasons}, ',')) as c(code) "
        f"where score_date = {latest} "
        f"and {band} = '{ACTION_BAND}' and trim(code) <> '' group by all"
        for kind, (band, reasons) in kinds.items()
    )
    counts = wh.df(f"{selects} order by kind, users desc, code")
    if not nonempty(counts):
        page.missing.append(f"reasons (nobody is in a {ACTION_BAND} band today)")
        return
    counts["reason"] = [plain_code(c) for c in counts["code"]]
    counts["meaning"] = [DIRECTION.get(k, k) for k in counts["kind"]]
    chart = plot(
        f"Why users are in the {ACTION_BAND} band (latest day): users per reason",
        counts, "bar", table=counts[["meaning", "reason", "code", "users"]],
        note=f"only users in the {ACTION_BAND} band: a reason is a feature that pushes their "
        "score up; the same codes on a low-band user are nothing to act on",
        width=300, height=18 * int(counts.groupby("kind").size().max()),
        facet="meaning:N", columns=1,
        y=alt.Y("reason:N", title=None, sort="-x"), x=alt.X("users:Q"),
    )  # fmt: skip
    if chart is not None:
        chart.chart = chart.chart.resolve_scale(y="independent")
    page.add(chart)
