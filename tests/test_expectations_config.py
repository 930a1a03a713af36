"""QualityConfig: defaults, SEGFLOW_DQ_* overrides, and errors that name the variable."""

from __future__ import annotations

import pytest

from expectations import QualityConfig, QualityConfigError, env_var_table


def test_defaults_and_overrides():
    config = QualityConfig.from_env(
        environ={
            "SEGFLOW_DQ_DUPLICATE_WARN_SHARE": "0.02",
            "SEGFLOW_LATE_ARRIVAL_DAYS": "5",
            "SEGFLOW_DQ_MAX_AMOUNT": "100",
        },
        event_names=["A"],
        plans=["free"],
    )
    assert (config.duplicate_warn_share, config.late_arrival_days, config.max_amount) == (
        0.02,
        5,
        100.0,
    )
    assert isinstance(config.late_arrival_days, int)
    assert config.row_count_drop_share == 0.8
    assert config.accepted.event_names == frozenset({"A"}) and config.accepted.plans == ("free",)
    assert QualityConfig.from_env(environ={}).accepted.event_names is None


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("SEGFLOW_DQ_ROW_COUNT_DROP_SHARE", "1.5", "between 0 and 1"),
        ("SEGFLOW_DQ_ROW_COUNT_HISTORY_DAYS", "two", "expected an integer"),
        ("SEGFLOW_QUARANTINE_MAX_SHARE", "x", "expected a number"),
    ],
)
def test_bad_values_name_the_variable(var, value, expected):
    with pytest.raises(QualityConfigError, match=var) as info:
        QualityConfig.from_env(environ={var: value})
    assert expected in str(info.value)


def test_env_table_lists_every_variable_once():
    rows = env_var_table()
    names = [r["variable"] for r in rows]
    assert len(names) == len(set(names)) and "SEGFLOW_DQ_ROW_COUNT_DROP_SHARE" in names
