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

    def as_var(self) -> dict[str, str]:
        """What dbt receives in the `custom_attributes` var."""
        return {"name": self.name, "type": self.type, "column": self.feature_column}


def feature_columns(attributes: tuple[CustomAttribute, ...] = ()) -> dict[str, str]:
    """`fct_user_features` column -> contract type for the declared attributes."""
    return {a.feature_column: a.feature_type for a in attributes}
