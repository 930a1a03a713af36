"""Rule language and config validation: the shipped files load, bad files fail before
anything runs with the file, the entry and the problem in the message."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.segments.config import (
    DEFAULT_FLOWS_PATH,
    DEFAULT_SEGMENTS_PATH,
    DEFAULT_TRIGGERS_PATH,
    SegmentConfigError,
    load_config,
)
from orchestration.segments.rules import RuleError, compile_rule
from orchestration.segments.schema import COLUMNS

TRIGGERS_OK = "triggers: []\n"


def write(
    tmp_path: Path, segments: str, flows: str | None = None, triggers: str = TRIGGERS_OK
) -> tuple[Path, Path, Path]:
    paths = (tmp_path / "segments.yml", tmp_path / "flows.yml", tmp_path / "triggers.yml")
    paths[0].write_text(segments)
    paths[1].write_text(flows if flows is not None else DEFAULT_FLOWS_PATH.read_text())
    paths[2].write_text(triggers)
    return paths


def segments_with(rule_entries: str) -> str:
    """The shipped segments (so flows.yml still resolves) plus extra entries."""
    return DEFAULT_SEGMENTS_PATH.read_text() + rule_entries


def test_shipped_config_loads_and_covers_the_taxonomy():
    config = load_config()
    names = set(config.segment_names)
    assert {"new_users", "power_users", "churn_risks", "high_ltv", "enterprise", "smb"} <= names
    assert any(n.startswith("industry_") for n in names)
    assert config.default_flow in config.flows
    assert config.experiments and all(
        abs(sum(v.share for v in e.variants) - 1) < 1e-9 for e in config.experiments
    )
    assert {t.name for t in config.triggers} >= {
        "churn_band_rose_to_high",
        "became_power_user",
        "reached_first_value",
        "activity_halved",
    }
    # the exclusive company-size group is resolved from the higher priority down
    assert config.resolution_order.index("enterprise") < config.resolution_order.index("smb")


@pytest.mark.parametrize(
    "rule, fragment",
    [
        ("plann == 'pro'", "unknown column `plann`; did you mean plan"),
        ("days_since_signup < ", "syntax error at character"),
        ("plan == 5", "type mismatch: `plan` is a string but `5` is a number"),
        ("industry in [1, 2]", "type mismatch"),
        ("not plan", "`not` needs a bool"),
        ("events_7d", "must be true/false"),
        ("__import__('os').system('x') == 0", "not allowed in a rule"),
        ("plan.upper() == 'PRO'", "not allowed in a rule"),
        ("plan == None", "`is None`"),
        ("mrr ** 2 > 1", "not allowed"),
        ("reached_first_value < true", "does not apply to bool"),
    ],
)
def test_bad_rules_are_rejected(rule: str, fragment: str):
    with pytest.raises(RuleError, match=None) as info:
        compile_rule(rule, COLUMNS)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "rule, position, fragment",
    [
        ("active_days_7d >= 5 and and feature_breadth_28d > 1", 25, "invalid syntax"),
        ("days_since_signup <", 20, "unexpected end of rule"),
        ("plan = 'pro'", 6, "use == to compare"),
        ("plan <> 'pro'", 6, "use != for not equal"),
        ("plan == 'pro", 9, "unterminated string"),
    ],
)
def test_syntax_error_reports_position(rule: str, position: int, fragment: str):
    with pytest.raises(RuleError) as info:
        compile_rule(rule, COLUMNS)
    assert info.value.position == position
    assert f"character {position}" in str(info.value) and fragment in str(info.value)


def test_literals_become_parameters_never_sql_text():
    rule = compile_rule("plan == \"x'); drop table t; --\" or industry in ['a', 'b']", COLUMNS)
    assert "drop" not in rule.sql and "'" not in rule.sql
    assert list(rule.params.values()) == ["x'); drop table t; --", "a", "b"]
    conn = duckdb.connect()
    conn.execute("create table t as select 'x''); drop table t; --' as plan, 'c' as industry")
    assert conn.execute(f"select {rule.sql} from t", rule.params).fetchone() == (True,)
    assert conn.execute("select count(*) from t").fetchone() == (1,)


def test_null_logic_and_chained_comparisons_evaluate_like_the_rule_says():
    conn = duckdb.connect()
    conn.execute(
        "create table t as select * from (values (3, null), (6, 'high'), (9, 'low')) "
        "v(days_since_signup, churn_band)"
    )
    cases = {
        "0 < days_since_signup < 7": [True, True, False],
        "churn_band == 'high'": [False, True, False],  # null -> false
        "churn_band is None": [True, False, False],
        "not (churn_band != 'high')": [False, True, False],
        "days_since_signup * 2 - 1 >= 11 or churn_band is not None and churn_band in ['low']": [
            False,
            True,
            True,
        ],
    }
    for text, expected in cases.items():
        rule = compile_rule(text, COLUMNS)
        got = [
            r[0]
            for r in conn.execute(
                f"select {rule.sql} from t order by days_since_signup", rule.params
            ).fetchall()
        ]
        assert got == expected, text


def test_config_error_names_file_segment_and_problem(tmp_path: Path):
    paths = write(tmp_path, segments_with('  - {name: bad_one, rule: "plan == 5", priority: 1}\n'))
    with pytest.raises(SegmentConfigError) as info:
        load_config(*paths)
    message = str(info.value)
    assert str(paths[0]) in message and "'bad_one'" in message and "type mismatch" in message


def test_unknown_column_in_config(tmp_path: Path):
    paths = write(
        tmp_path, segments_with('  - {name: trial_heavy, rule: "events_7dd > 3", priority: 1}\n')
    )
    with pytest.raises(
        SegmentConfigError,
        match=r"trial_heavy.*unknown column `events_7dd`; "
        r"did you mean events_7d",
    ):
        load_config(*paths)


def test_duplicate_segment_names(tmp_path: Path):
    paths = write(tmp_path, segments_with('  - {name: new_users, rule: "true", priority: 1}\n'))
    with pytest.raises(SegmentConfigError, match="duplicate segment name 'new_users'"):
        load_config(*paths)


def test_cycle_through_excludes(tmp_path: Path):
    paths = write(
        tmp_path,
        segments_with(
            '  - {name: aa, rule: "is_paid", priority: 5, excludes: [bb]}\n'
            '  - {name: bb, rule: "mrr > 0", priority: 4, excludes: [cc]}\n'
            '  - {name: cc, rule: "mrr > 10", priority: 3, excludes: [aa]}\n'
        ),
    )
    with pytest.raises(SegmentConfigError, match=r"cycle .*aa -> bb -> cc -> aa"):
        load_config(*paths)


def test_cycle_between_group_rank_and_excludes(tmp_path: Path):
    # smb outranks nothing in its group, but enterprise outranks smb; smb excluding
    # enterprise closes the loop enterprise -> smb -> enterprise.
    text = DEFAULT_SEGMENTS_PATH.read_text().replace(
        "    priority: 20\n    group: company_size",
        "    priority: 20\n    group: company_size\n    excludes: [enterprise]",
    )
    paths = write(tmp_path, text)
    with pytest.raises(SegmentConfigError, match=r"cycle .*outranks smb in group 'company_size'"):
        load_config(*paths)


def test_segment_excluding_its_own_group(tmp_path: Path):
    paths = write(
        tmp_path,
        segments_with(
            '  - {name: xx, rule: "is_paid", priority: 5, group: gg, excludes: [gg]}\n'
            '  - {name: yy, rule: "is_paid", priority: 4, group: gg}\n'
        ),
    )
    with pytest.raises(SegmentConfigError, match="excludes itself"):
        load_config(*paths)


def test_flow_errors(tmp_path: Path):
    flows = DEFAULT_FLOWS_PATH.read_text()
    cases = {
        flows.replace(
            "milestone: account_created", "milestone: account_creatd", 1
        ): "unknown milestone 'account_creatd'",
        flows.replace(
            "control_share: 0.1", "control_share: 0.2"
        ): "shares = 1.1; they must add up to 1",
        flows.replace(
            "  churn_risks: churn_rescue", "  churn_riskz: churn_rescue"
        ): "segment_flows: unknown segment 'churn_riskz'",
        flows.replace(
            "default_flow: default_onboarding", "default_flow: nope"
        ): "default_flow 'nope' is not a flow",
        flows.replace(
            "blocks: [invite_team_nudge, integration_setup, contextual_tips]",
            "blocks: [invite_team_nudge, teleport]",
        ): "unknown block 'teleport'",
        flows.replace("- name: tutorial", "- name: control"): "duplicate or reserved",
    }
    for text, fragment in cases.items():
        paths = write(tmp_path, DEFAULT_SEGMENTS_PATH.read_text(), text)
        with pytest.raises(SegmentConfigError) as info:
            load_config(*paths)
        assert fragment in str(info.value) and str(paths[1]) in str(info.value)


def test_trigger_errors(tmp_path: Path):
    cases = {
        "triggers:\n  - {name: t1, rule: \"churn_bnd == 'high'\"}\n": "unknown column",
        "triggers:\n  - {name: t1, entered_segment: nobody}\n": "entered_segment 'nobody'",
        "triggers:\n  - {name: t1, rule: is_paid, entered_segment: smb}\n": "exactly one of",
        "triggers:\n  - {name: t1, rule: is_paid, for_days: 0}\n": "for_days",
        "triggers:\n  - {name: t1, rule: is_paid}\n  - {name: t1, rule: is_paid}\n": "duplicate trigger name",
    }
    for text, fragment in cases.items():
        paths = write(tmp_path, DEFAULT_SEGMENTS_PATH.read_text(), triggers=text)
        with pytest.raises(SegmentConfigError, match=fragment) as info:
            load_config(*paths)
        assert str(paths[2]) in str(info.value)


def test_validation_against_other_column_types(tmp_path: Path):
    """A warehouse where `industry` is numeric makes the shipped string rules type errors."""
    columns = {**COLUMNS, "industry": "INTEGER"}
    with pytest.raises(SegmentConfigError, match="industry_software.*type mismatch"):
        load_config(DEFAULT_SEGMENTS_PATH, DEFAULT_FLOWS_PATH, DEFAULT_TRIGGERS_PATH, columns)


def test_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from orchestration.segments.__main__ import main

    assert main([]) == 0
    assert f"ok: {len(load_config().segments)} segments" in capsys.readouterr().out
    paths = write(tmp_path, segments_with('  - {name: broken, rule: "plan >", priority: 1}\n'))
    assert (
        main(["--segments", str(paths[0]), "--flows", str(paths[1]), "--triggers", str(paths[2])])
        == 1
    )
    err = capsys.readouterr().err
    assert "invalid:" in err and "'broken'" in err and "syntax error" in err
