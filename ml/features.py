"""Build a model's input spec from its declared columns and put them in the dtype the model
expects.

Which columns a model may use is declared (`ml.feature_sets`); the dtype of each decides
whether it is numeric, boolean or categorical. Degenerate columns (empty, constant, nearly
empty) are dropped with a reason instead of reaching the estimator. The chosen spec travels
with the model, so scoring prepares features exactly as training did.
`infer_feature_spec` (every usable column) remains for ad-hoc analysis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from contracts.models import KINDS

SNAPSHOT_COLUMN = "snapshot_date"
USER_COLUMN = "user_id"
# Columns that hold outcomes after the snapshot date; never inputs, whichever mart they sit in.
LABEL_COLUMNS = frozenset(
    {
        *(spec.label for spec in KINDS.values()),
        "churned",
        "converted",
        "churned_next_window",
        "converted_next_window",
        "revenue_next_window",
    }
)
MISSING_CATEGORY = "(missing)"


class InsufficientDataError(ValueError):
    """Too few labelled rows to fit and evaluate a model; the caller may skip training."""


class FeatureError(ValueError):
    """A feature table does not match what the model needs; the message names the column."""


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns feed the model and their training reference values.

    `reference` holds the training median (numeric) or mode (boolean/categorical): reason
    codes measure how far a user's value moves the prediction away from this typical user.
    """

    numeric: tuple[str, ...]
    boolean: tuple[str, ...]
    categorical: tuple[str, ...]
    reference: dict[str, float | str]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.boolean + self.categorical

    def to_dict(self) -> dict:
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, raw: dict) -> FeatureSpec:
        return cls(
            numeric=tuple(raw["numeric"]),
            boolean=tuple(raw["boolean"]),
            categorical=tuple(raw["categorical"]),
            reference=dict(raw["reference"]),
        )


def _is_excluded(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered in LABEL_COLUMNS
        or "_next_" in lowered  # any forward-looking outcome column
        or lowered == USER_COLUMN
        or lowered.endswith("_id")
        or lowered.endswith("_date")
        or lowered.endswith("_at")
        or lowered == "email"
    )


def _classify(df: pd.DataFrame, name: str) -> str | None:
    """ "numeric", "boolean", "categorical" or None (nested / mixed values)."""
    dtype = df[name].dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        non_null = df[name].dropna()
        if len(non_null) and non_null.map(lambda v: isinstance(v, bool | np.bool_)).all():
            return "boolean"  # nullable booleans from some drivers arrive as objects
        if len(non_null) and not non_null.map(lambda v: isinstance(v, str)).all():
            return None
        return "categorical"
    return None


def declared_feature_spec(df: pd.DataFrame, declared: tuple[str, ...] | list[str]) -> FeatureSpec:
    """Spec over exactly the declared columns; fails naming any that is missing or unusable."""
    missing = [name for name in declared if name not in df.columns]
    if missing:
        raise FeatureError(
            f"training table lacks declared feature column(s) {missing}; declare only columns "
            f"the feature table has (present: {sorted(df.columns)})"
        )
    leaking = [name for name in declared if _is_label(name)]
    if leaking:
        raise FeatureError(f"declared features {leaking} are outcomes after the snapshot")
    groups: dict[str, list[str]] = {"numeric": [], "boolean": [], "categorical": []}
    for name in declared:
        kind = _classify(df, name)
        if kind is None:
            raise FeatureError(f"declared feature {name!r} holds nested or mixed values")
        groups[kind].append(name)
    return with_reference(
        df,
        FeatureSpec(
            tuple(groups["numeric"]), tuple(groups["boolean"]), tuple(groups["categorical"]), {}
        ),
    )


def _is_label(name: str) -> bool:
    lowered = name.lower()
    return lowered in LABEL_COLUMNS or "_next_" in lowered


def screen_degenerate(
    df: pd.DataFrame, spec: FeatureSpec, min_non_null: int = 20
) -> tuple[FeatureSpec, dict[str, str]]:
    """Drop columns a model cannot learn from: empty, constant, or with fewer than
    `min_non_null` values (such a column can be empty inside a cross-validation fold, which
    the gradient-boosting binner rejects). Returns the reduced spec and {column: reason}."""
    dropped: dict[str, str] = {}
    prepared = prepare_features(df, spec)
    for name in spec.columns:
        column = prepared[name]
        if name in spec.categorical:
            levels = column.nunique(dropna=False)
            if levels <= 1:
                dropped[name] = f"constant ({column.iloc[0] if len(column) else 'no rows'!s})"
            continue
        non_null = int(column.notna().sum())
        if non_null == 0:
            dropped[name] = "empty (null in every row)"
        elif column.nunique(dropna=True) <= 1 and non_null == len(column):
            dropped[name] = f"constant ({column.dropna().iloc[0]:g})"
        elif non_null < min_non_null:
            dropped[name] = (
                f"nearly empty ({non_null} non-null of {len(column)}, need {min_non_null})"
            )
    if not dropped:
        return spec, dropped
    kept = FeatureSpec(
        tuple(c for c in spec.numeric if c not in dropped),
        tuple(c for c in spec.boolean if c not in dropped),
        tuple(c for c in spec.categorical if c not in dropped),
        {k: v for k, v in spec.reference.items() if k not in dropped},
    )
    return kept, dropped


def with_reference(df: pd.DataFrame, spec: FeatureSpec) -> FeatureSpec:
    """The spec with training reference values: median (numeric), mode (boolean, category)."""
    prepared = prepare_features(df, spec)
    reference: dict[str, float | str] = {}
    for name in spec.numeric:
        median = prepared[name].median()
        reference[name] = float(median) if pd.notna(median) else 0.0
    for name in spec.boolean:  # the common value, never an in-between 0.5
        modes = prepared[name].mode()
        reference[name] = float(modes.iloc[0]) if len(modes) else 0.0
    for name in spec.categorical:
        modes = prepared[name].mode()
        reference[name] = str(modes.iloc[0]) if len(modes) else MISSING_CATEGORY
    return FeatureSpec(spec.numeric, spec.boolean, spec.categorical, reference)


def infer_feature_spec(df: pd.DataFrame, exclude: tuple[str, ...] = ()) -> FeatureSpec:
    """Classify the usable columns of a training table by dtype and record reference values."""
    numeric: list[str] = []
    boolean: list[str] = []
    categorical: list[str] = []
    for name in df.columns:
        if name in exclude or _is_excluded(name):
            continue
        dtype = df[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            boolean.append(name)
        elif pd.api.types.is_numeric_dtype(dtype):
            numeric.append(name)
        elif pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
            non_null = df[name].dropna()
            if len(non_null) and non_null.map(lambda v: isinstance(v, bool | np.bool_)).all():
                boolean.append(name)  # nullable booleans from some drivers arrive as objects
            elif len(non_null) and not non_null.map(lambda v: isinstance(v, str)).all():
                continue  # nested / mixed values (lists, dicts) are not model inputs
            else:
                categorical.append(name)
    if not (numeric or boolean or categorical):
        raise FeatureError(
            f"no usable feature columns among {list(df.columns)}: expected numeric, boolean "
            "or string columns besides ids, dates and labels"
        )
    return with_reference(df, FeatureSpec(tuple(numeric), tuple(boolean), tuple(categorical), {}))


def prepare_features(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Return the model input frame: numerics and booleans as float64, strings as object.

    Missing categories become an explicit level so the one-hot encoder sees one string type.
    """
    missing = [name for name in spec.columns if name not in df.columns]
    if missing:
        raise FeatureError(
            f"feature table lacks column(s) {missing} that the model was trained on; "
            f"present: {sorted(df.columns)}"
        )
    # Columns gathered as arrays and framed once (inserting them one by one into a frame
    # cost more than the model's predict on a day of users).
    columns: dict[str, np.ndarray] = {}
    for name in spec.numeric + spec.boolean:
        columns[name] = number_values(df[name], name in spec.boolean)
    for name in spec.categorical:
        columns[name] = category_values(df[name])
    return pd.DataFrame({name: columns[name] for name in spec.columns}, index=df.index)


def number_values(column: pd.Series, boolean: bool) -> np.ndarray:
    """A numeric or boolean feature column as the model sees it: float64, infinities and
    nulls as NaN (a new array)."""
    if boolean and pd.api.types.is_object_dtype(column.dtype):
        column = column.astype("boolean")
    try:
        values = pd.to_numeric(column, errors="raise").astype("float64").to_numpy(copy=True)
    except (TypeError, ValueError) as exc:
        raise FeatureError(
            f"column {column.name!r}: expected numeric/boolean values ({exc})"
        ) from exc
    values[np.isinf(values)] = np.nan
    return values


def category_values(column: pd.Series) -> np.ndarray:
    """A categorical feature column as the model sees it: strings, nulls as MISSING_CATEGORY."""
    values = column.astype("object")
    return values.where(values.notna(), MISSING_CATEGORY).astype(str).to_numpy(dtype=object)


def require_columns(df: pd.DataFrame, columns: tuple[str, ...], table: str) -> None:
    """Fail with the table and column names when an input lacks required columns."""
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise FeatureError(f"{table}: missing required column(s) {missing}")
