"""Reason codes as a marketer reads them: only for the band someone acts on, in words, with
the direction said plainly.

ml/reasons.py gives every scored user up to three codes (`inactive_14d`, `few_features_used`,
`plan_trial`), each a feature that pushes the score up. For a user in the low churn band
"inactive_14d" is noise (it pushes a small risk up a little); for a high-risk user it is the
thing to act on. So the sync payload carries a kind's codes only in its `ACTION_BAND`, and
people.csv and the report turn them into "raises churn risk: inactive 14+ days, few features
used". The payload keeps the codes themselves (stable values a Customer.io segment can test);
the words are for people reading a file or a page.
"""

from __future__ import annotations

import re

from contracts.models import KINDS

ACTION_BAND = "high"  # the top band of ml/train.py's BAND_LABELS: the one campaigns act on
DIRECTION = {"churn": "raises churn risk", "ltv": "raises expected value"}
_WORDS = {
    "inactive_recently": "inactive lately",
    "activity_down": "activity falling",
    "activity_down_50pct": "activity down by half or more",
    "activity_up": "activity rising",
    "no_first_value_yet": "has not reached first value",
    "onboarding_incomplete": "onboarding not finished",
    "few_features_used": "few features used",
    "many_support_tickets": "many support tickets",
}
_INACTIVE = re.compile(r"^inactive_(\d+)d$")


def banded_kinds() -> dict[str, tuple[str, str]]:
    """kind -> (band column, reasons column) for every kind that has reasons."""
    return {
        kind: (spec.band_column, spec.reasons_column)
        for kind, spec in KINDS.items()
        if spec.band_column and spec.reasons_column
    }


def plain_code(code: str) -> str:
    """One code in words: `inactive_14d` -> "inactive 14+ days", `active_days_7d_low` ->
    "active days 7d low", `plan_trial` -> "plan trial"."""
    code = code.strip()
    if code in _WORDS:
        return _WORDS[code]
    if match := _INACTIVE.match(code):
        return f"inactive {match.group(1)}+ days"
    return code.replace("_", " ")


def plain_reasons(kind: str, codes: str | None, band: str | None) -> str:
    """ "raises churn risk: inactive 14+ days, few features used" when the user is in the
    kind's action band and has codes; "" otherwise."""
    listed = [c for c in (codes or "").split(",") if c.strip()]
    if band != ACTION_BAND or not listed:
        return ""
    return f"{DIRECTION.get(kind, 'raises the score')}: " + ", ".join(map(plain_code, listed))


def action_band_sql(kind: str, alias: str) -> str:
    """SQL for the kind's reason codes, null outside its action band (payload.py)."""
    band, reasons = banded_kinds()[kind]
    return f"case when {alias}.{band} = '{ACTION_BAND}' then nullif({alias}.{reasons}::VARCHAR, '') end"
