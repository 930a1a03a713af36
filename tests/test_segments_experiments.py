"""Experiment assignment (deterministic, shares within sampling error), the statistics
against published examples, and fct_experiment_results on a real DuckDB file."""

from __future__ import annotations

import hashlib
import math
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from support.segment_tables import build_frames, write_tables

from orchestration.segments.assign import assign_segments
from orchestration.segments.config import Experiment, Variant, load_config
from orchestration.segments.experiments import experiment_results
from orchestration.segments.stats import (
    assign_variants,
    hash_unit,
    two_proportion_z_test,
    wilson_interval,
)

EXPERIMENT = Experiment(
    "onboarding_test",
    "some_flow",
    (Variant("control", 0.1, None), Variant("a", 0.3, ("x",)), Variant("b", 0.6, ("y",))),
)


def test_assignment_is_a_pure_function_of_experiment_and_user():
    users = [f"user-{i}" for i in range(2000)]
    first = assign_variants(EXPERIMENT, users)
    assert assign_variants(EXPERIMENT, list(reversed(users))) == list(reversed(first))
    assert assign_variants(EXPERIMENT, users[:10]) == first[:10]
    # a known value pins the hash scheme (sha256 of "<experiment>:<user_id>", first 8 bytes)
    digest = hashlib.sha256(b"onboarding_test:user-1").digest()
    assert hash_unit("onboarding_test", "user-1") == int.from_bytes(digest[:8], "big") / 2**64
    other = assign_variants(Experiment("another_test", "f", EXPERIMENT.variants), users)
    assert other != first  # independent across experiments


def test_realised_shares_match_configured_on_100k_users():
    n = 100_000
    counts = pd.Series(assign_variants(EXPERIMENT, [f"u{i:07d}" for i in range(n)])).value_counts()
    for variant in EXPERIMENT.variants:
        sigma = math.sqrt(n * variant.share * (1 - variant.share))
        assert abs(counts[variant.name] - n * variant.share) < 4 * sigma, variant.name


def test_two_proportion_z_test_matches_textbook_example():
    # Physicians' Health Study (aspirin vs placebo, heart attacks), as worked in
    # Agresti & Franklin, "Statistics: The Art and Science of Learning from Data", ch. 10:
    # placebo 189/11034, aspirin 104/11037, pooled z = 5.0, P-value < 0.001.
    z, p = two_proportion_z_test(189, 11034, 104, 11037)
    assert z == pytest.approx(5.00, abs=0.01)
    assert p == pytest.approx(5.7e-7, rel=0.05)
    # symmetric, and z^2 equals Pearson's chi-square without continuity correction
    assert two_proportion_z_test(104, 11037, 189, 11034)[0] == pytest.approx(-z)
    for x1, n1, x2, n2 in [(140, 200, 255, 340), (28, 254, 36, 301), (5, 40, 12, 41)]:
        z, p = two_proportion_z_test(x1, n1, x2, n2)
        chi2, p_chi, _, _ = chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
        assert z * z == pytest.approx(chi2) and p == pytest.approx(p_chi)
    # 140/200 vs 255/340: z = -1.266, two-sided p = 0.2055 (pooled p = 0.7315)
    z, p = two_proportion_z_test(140, 200, 255, 340)
    assert z == pytest.approx(-1.266, abs=0.001) and p == pytest.approx(0.2055, abs=0.0005)
    assert all(math.isnan(v) for v in two_proportion_z_test(0, 10, 0, 10))


def test_wilson_interval_matches_newcombe_1998():
    # Newcombe, "Two-sided confidence intervals for the single proportion", Stat Med 1998,
    # Table I, method 3 (Wilson score): 81/263 -> 0.2553-0.3662; 15/148 -> 0.0624-0.1605;
    # 0/20 -> 0-0.1611; 1/29 -> 0.0061-0.1718.
    expected = {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }
    for (x, n), (low, high) in expected.items():
        got = wilson_interval(x, n)
        assert got == pytest.approx((low, high), abs=1e-4), (x, n)


START = date(2025, 5, 5)


@pytest.fixture(scope="module")
def experiment_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("experiments") / "warehouse.duckdb"
    features, scores = build_frames(users=1500, days=45, start=START, seed=3)
    with duckdb.connect(str(path)) as conn:
        write_tables(conn, features, scores)
        assign_segments(conn, load_config(), [START + timedelta(days=i) for i in range(45)])
    return path


def test_experiment_results_per_segment_and_variant(experiment_warehouse: Path):
    config = load_config()
    as_of = START + timedelta(days=44)
    with duckdb.connect(str(experiment_warehouse)) as conn:
        results = experiment_results(conn, config, as_of, min_sample=30)
        stored = conn.execute("select * from main.fct_experiment_results").df()
        exposed = conn.execute(
            "select experiment_variant, count(distinct user_id) from main.user_segments "
            "where experiment = 'new_user_first_steps' group by 1"
        ).fetchall()
    assert len(stored) == len(results)
    overall = results[results["segment"] == "all"].set_index("variant")
    assert set(overall.index) == {"control", "checklist", "tutorial"}
    assert dict(exposed) == overall["users"].to_dict()
    assert overall.loc["control", "verdict"] == "control"
    for variant in ("checklist", "tutorial"):
        row = overall.loc[variant]
        assert (
            row["onboarding_completion_ci_low"]
            <= row["onboarding_completion_rate"]
            <= row["onboarding_completion_ci_high"]
        )
        assert 0 <= row["p_value"] <= 1
        assert row["verdict"] in {
            "better_than_control",
            "worse_than_control",
            "no_significant_difference",
        }
        assert row["retention_28d_users"] <= row["users"]
    # per-segment rows add up to the overall row
    per_segment = results[results["segment"] != "all"].groupby("variant")["users"].sum()
    assert per_segment.to_dict() == overall["users"].to_dict()


def test_no_verdict_below_min_sample(experiment_warehouse: Path):
    with duckdb.connect(str(experiment_warehouse)) as conn:
        results = experiment_results(
            conn, load_config(), START + timedelta(days=44), min_sample=10_000
        )
    variants = results[results["variant"] != "control"]
    assert len(variants) and set(variants["verdict"]) == {"insufficient_sample"}
    assert variants["p_value"].notna().any()  # the test is still reported, just no verdict
