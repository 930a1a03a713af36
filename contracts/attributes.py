"""Custom typed CRM attributes (declared in `sources.yml` under `attributes:`): the types a
deployment may declare and the `fct_user_features` column each one becomes, written once so
the mapping parser, dbt (through `dbt_vars`), the GX suite, the segment schema and the model
inputs agree.

A `date` becomes whole years elapsed at the snapshot date (`years_since_<name>`: a date of
birth gives the age), a `number` a DOUBLE `<name>`, a `category` a VARCHAR `<name>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ATTRIBUTE_TYPES = ("date", "number", "category")
RAW_COLUMN = "attributes"  # raw.crm_contacts JSON object holding the declared attributes
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FEATURE_TYPE = {"date": "INT", "number": "DOUBLE", "category": "VARCHAR"}
# The SQL type a value must cast to (try_cast) to be valid; a category takes any text. The dbt
# macro `custom_attribute_value` receives it in the var and the load's bad-value check uses it.
PARSED_AS = {"date": "date", "number": "double", "category": None}
# A declared value that does not parse is null in the marts and recorded in raw.quarantine
# under this table name (the contact itself loads: not a lost row for the row reconciliation).
QUARANTINE_TABLE = "crm_contacts.attributes"
BAD_VALUE_REASON = "bad_attribute_value"
# dim_users carries each attribute under its own name (as of the latest CRM version): besides
# the raw CRM columns and the feature columns, these dim_users columns are taken.
DIM_USERS_OWN_COLUMNS = (
    "signup_date",
    "signup_week",
    "signup_month",
    "current_plan",
    "lifecycle_stage",
    "last_active_date",
)


@dataclass(frozen=True)
class CustomAttribute:
    """One declared attribute: its key in the raw `attributes` object and its type."""

    name: str
    type: str

    @property
    def feature_column(self) -> str:
        return f"years_since_{self.name}" if self.type == "date" else self.name

    @property
    def feature_type(self) -> str:
        return _FEATURE_TYPE[self.type]

    @property
    def parsed_as(self) -> str | None:
        return PARSED_AS[self.type]

    def as_var(self) -> dict[str, str | None]:
        """What dbt receives in the `custom_attributes` var."""
        return {
            "name": self.name,
            "type": self.type,
            "column": self.feature_column,
            "cast": self.parsed_as,
        }


def feature_columns(attributes: tuple[CustomAttribute, ...] = ()) -> dict[str, str]:
    """`fct_user_features` column -> contract type for the declared attributes."""
    return {a.feature_column: a.feature_type for a in attributes}
