"""Experiments: per arm, the verdict in words (why a verdict is not given yet and how long
until it can be), outcome with its 95% CI, relative lift vs control with its 95% CI, and
users per arm against the minimum sample."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from orchestration.report.charts import W, plot, vline
from orchestration.report.inputs import Warehouse, nonempty
from orchestration.report.render import Page, table_block

Z95 = 1.959964
RATE = "onboarding_completion_rate"


def build(wh: Warehouse, min_sample: int) -> Page:
    page = Page(
        "experiments",
        "Experiments",
        "Per experiment and segment: each arm's onboarding completion with its 95% confidence "
        "interval, relative lift vs control with its interval, the verdict in words, and users "
        f"per arm against the minimum ({min_sample}).",
    )
    if not wh.has("fct_experiment_results"):
        page.missing.append("experiment results (no fct_experiment_results)")
        return page
    history = wh.df(
        "select * from main.fct_experiment_results order by experiment, segment, variant"
    )
    if not nonempty(history):
        page.missing.append("experiment results (table is empty)")
        return page
    e = arms(history, min_sample)
    page.add(
        table_block(
            "Verdicts", e[["experiment", "segment", "variant", "users", "verdict", "in_words"]]
        )
    )
    for name, g in e.groupby("experiment"):
        _outcome(page, name, g)
        lifts = g[g["variant"] != "control"].dropna(subset=["relative_lift"])
        page.add(
            plot(f"{name}: relative lift in onboarding completion vs control (95% CI)", lifts,
                 "point", mark_args={"filled": True, "size": 60}, width=W - 120,
                 height=max(40, 22 * len(lifts)),
                 layers=(alt.Chart(lifts).mark_rule().encode(
                     y="arm:N", x="lift_ci_low:Q", x2="lift_ci_high:Q"), vline(0.0, "no_lift", "#999")),
                 y=alt.Y("arm:N", title=None),
                 x=alt.X("relative_lift:Q", axis=alt.Axis(format="%"), title="relative lift"),
                 color=alt.Color("verdict:N"))
        )  # fmt: skip
    sizes = e[["experiment", "segment", "variant", "users", "verdict"]].assign(minimum=min_sample)
    sizes["label"] = sizes["experiment"] + " · " + sizes["segment"] + " · " + sizes["variant"]
    page.add(
        plot("Sample size per arm vs the minimum (red line)", sizes, "bar", table=sizes,
             width=W - 120, height=18 * len(sizes), layers=(vline(min_sample, "minimum"),),
             y=alt.Y("label:N", title=None), x=alt.X("users:Q"), color=alt.Color("verdict:N"))
    )  # fmt: skip
    return page


def arms(history: pd.DataFrame, min_sample: int) -> pd.DataFrame:
    """The latest day's arms with control's rate, the relative lift and its CI, and the
    verdict in words (with days to the minimum sample at the arm's recent intake,
    `users_per_day`, read from the exposure dates)."""
    latest_day = history["as_of"].max() if "as_of" in history else None
    e = history[history["as_of"] == latest_day] if latest_day is not None else history
    if "users_per_day" not in e:
        e = e.assign(users_per_day=math.nan)
    control = e[e["variant"] == "control"][
        ["experiment", "segment", RATE, "users", "users_per_day"]
    ]
    e = e.merge(
        control.rename(
            columns={
                RATE: "control_rate",
                "users": "control_users",
                "users_per_day": "control_per_day",
            }
        ),
        on=["experiment", "segment"],
        how="left",
    )
    lift = e.apply(
        lambda r: relative_lift(r[RATE], r["users"], r["control_rate"], r["control_users"]), axis=1
    )
    e[["relative_lift", "lift_ci_low", "lift_ci_high"]] = pd.DataFrame(lift.tolist(), index=e.index)
    e["arm"] = e["segment"] + " · " + e["variant"]
    e["in_words"] = [verdict_words(r, min_sample) for r in e.itertuples()]
    return e


def relative_lift(rate, n, control_rate, control_n) -> tuple[float, float, float]:
    """Relative lift (rate / control - 1) with a 95% CI from the log rate ratio's standard
    error; NaN when either rate is 0 or missing."""
    nan = (math.nan, math.nan, math.nan)
    if any(pd.isna(v) for v in (rate, n, control_rate, control_n)) or min(rate, control_rate) <= 0:
        return nan
    if not n or not control_n:
        return nan
    se = math.sqrt((1 - rate) / (n * rate) + (1 - control_rate) / (control_n * control_rate))
    ratio = math.log(rate / control_rate)
    return (
        round(math.exp(ratio) - 1, 4),
        round(math.exp(ratio - Z95 * se) - 1, 4),
        round(math.exp(ratio + Z95 * se) - 1, 4),
    )


def verdict_words(r, min_sample: int) -> str:
    """The verdict as a sentence; below the minimum sample, which arm is short, by how much,
    and about how many more days at its recent intake (nothing said when no one joined)."""
    if r.verdict == "control":
        return f"control arm: {r.users:,} users"
    if r.verdict == "insufficient_sample":
        short = [(label, n, rate) for label, n, rate in (
            ("control", r.control_users, r.control_per_day),
            (r.variant, r.users, r.users_per_day),
        ) if not pd.isna(n) and n < min_sample]  # fmt: skip
        parts = []
        for label, n, rate in short:
            text = f"{label} has {int(n):,} of the {min_sample:,} needed"
            if not pd.isna(rate) and rate > 0:
                text += f": about {math.ceil((min_sample - n) / rate)} more days at today's rate"
            elif not pd.isna(rate):
                text += ": no one joined it lately, so it will not get there at today's rate"
            parts.append(text)
        return "no verdict yet: " + "; ".join(parts)
    lift = "" if pd.isna(r.relative_lift) else (
        f" ({r.relative_lift:+.1%}, 95% CI {r.lift_ci_low:+.1%} to {r.lift_ci_high:+.1%})"
    )  # fmt: skip
    return {
        "better_than_control": f"{r.variant} beats control{lift}",
        "worse_than_control": f"{r.variant} does worse than control{lift}",
        "no_significant_difference": f"no clear difference from control{lift}",
        "no_control": "no control arm in this segment: nothing to compare with",
    }.get(r.verdict, str(r.verdict))


def _outcome(page: Page, name: str, g: pd.DataFrame) -> None:
    ci = (
        alt.Chart(g)
        .mark_rule()
        .encode(y="arm:N", x="onboarding_completion_ci_low:Q", x2="onboarding_completion_ci_high:Q")
    )
    columns = ["segment", "variant", "users", "users_per_day", RATE, "onboarding_completion_ci_low",
               "onboarding_completion_ci_high", "relative_lift", "lift_ci_low", "lift_ci_high",
               "p_value", "retention_28d", "conversion_rate", "verdict", "in_words"]  # fmt: skip
    page.add(
        plot(f"{name}: outcome per arm with confidence interval", g, "point",
             table=g[[c for c in columns if c in g]], mark_args={"filled": True, "size": 60},
             width=W - 120, height=22 * len(g), layers=(ci,),
             y=alt.Y("arm:N", title=None),
             x=alt.X(f"{RATE}:Q", title="onboarding completion (95% CI)"),
             color=alt.Color("verdict:N"))
    )  # fmt: skip
