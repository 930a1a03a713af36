"""Quality thresholds are settings: `Settings.quality` reads the SEGFLOW_DQ_* variables (the
defaults are QualityConfig's), errors name the variable, and the loader's late-arrival
setting is the suite's too."""

from __future__ import annotations

import re

import pytest

from expectations import QualityConfig, QualityConfigError
from orchestration.settings import PROJECT_ROOT, QUALITY_VARIABLES, SettingError, Settings


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().quality == QualityConfig()
    monkeypatch.setenv("SEGFLOW_DQ_DUPLICATE_WARN_SHARE", "0.02")
    monkeypatch.setenv("SEGFLOW_LATE_ARRIVAL_DAYS", "5")
    monkeypatch.setenv("SEGFLOW_DQ_MAX_AMOUNT", "100")
    monkeypatch.setenv("SEGFLOW_TIMESTAMP_FLOOR", "2024-01-01")
    settings = Settings.from_env()
    config = settings.quality.accepting(event_names=["A"], plans=["free"])
    assert (config.duplicate_warn_share, config.late_arrival_days, config.max_amount) == (
        0.02,
        5,
        100.0,
    )
    assert config.late_arrival_days == settings.late_arrival_days  # one setting, one reader
    assert config.timestamp_floor == settings.timestamp_floor
    assert isinstance(config.late_arrival_days, int) and isinstance(config.sample_size, int)
    assert config.row_count_drop_share == 0.8
    assert config.accepted.event_names == frozenset({"A"}) and config.accepted.plans == ("free",)
    assert settings.quality.accepted.event_names is None


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("SEGFLOW_DQ_ROW_COUNT_DROP_SHARE", "1.5", "between 0 and 1"),
        ("SEGFLOW_DQ_ROW_COUNT_HISTORY_DAYS", "two", "expected an integer"),
        ("SEGFLOW_QUARANTINE_MAX_SHARE", "x", "expected a number"),
        ("SEGFLOW_DQ_CHUNK_DAYS", "-1", ">= 0"),
        ("SEGFLOW_LATE_ARRIVAL_DAYS", "-2", ">= 0"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, var, value, expected) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingError, match=var) as info:
        Settings.from_env()
    assert expected in str(info.value)


def test_a_bad_config_cannot_be_built() -> None:
    with pytest.raises(QualityConfigError, match="max_quarantine_share"):
        QualityConfig(max_quarantine_share=2.0)


def test_every_threshold_is_a_setting_and_in_the_readme() -> None:
    numeric = {
        name
        for name, value in vars(QualityConfig()).items()
        if isinstance(value, int | float) and name != "late_arrival_days"
    }
    assert set(QUALITY_VARIABLES) == numeric
    names = list(QUALITY_VARIABLES.values())
    assert len(names) == len(set(names))
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert [v for v in names if not re.search(f"`{v}`", readme)] == []
