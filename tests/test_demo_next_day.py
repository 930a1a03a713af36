"""`segflow demo-data --next-day` continues the same simulated product by one day: the days
already written stay byte for byte, the new day's people are the product's own customers
(new ones keep signing up after the original horizon), and a landing folder from another
product is refused."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from demo.next_day import DemoProduct, _day_files, load, next_day, record
from demo.saas import generate

START = date(2026, 3, 2)
PRODUCT = DemoProduct(
    users=80, days=6, seed=13, start=START.isoformat(), defect_rate=0.0, history_days=10
)


def _generate(root: Path) -> tuple[Path, Path]:
    out, truth = root / "landing", root / "truth"
    generate(out, truth, users=80, days=6, seed=13, start=START, history_days=10)
    record(truth, PRODUCT)
    return out, truth


def _ids(path: Path) -> set[str]:
    ids = set()
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("userId"):
            ids.add(row["userId"])
    return ids


def test_next_day_continues_the_same_product(tmp_path: Path) -> None:
    out, truth = _generate(tmp_path)
    before = {day: _day_files(out, day) for day in (PRODUCT.last_day, START)}

    new = next_day(out, truth)
    assert new == date(2026, 3, 8) and load(truth).last_day == new
    assert {day: _day_files(out, day) for day in before} == before  # history untouched
    new_files = _day_files(out, new)
    assert any(path.startswith("events/") for path in new_files)

    contacts = (out / "crm_contacts").glob("dt=2026-03-0[2-8]/*.csv")
    known = {line.split(",")[0] for p in contacts for line in p.read_text().splitlines()[1:]}
    new_ids = set().union(*(_ids(p) for p in (out / "events").glob(f"dt={new}/*.jsonl")))
    assert new_ids and new_ids <= known  # the product's own CRM contacts, not another's

    # A second day continues from the first added one (the replay reproduces it first).
    assert next_day(out, truth) == date(2026, 3, 9)
    assert _day_files(out, new) == new_files
    # People keep signing up after the original horizon (issue 23: nobody new signed up).
    added = pd.concat(pd.read_csv(p) for p in (out / "crm_contacts").glob("dt=2026-03-0[89]/*"))
    signups = pd.to_datetime(added["signup_at"]).dt.date
    assert (signups >= new).sum() >= 2, added[["user_id", "signup_at"]]


def test_next_day_refuses_a_folder_of_another_product(tmp_path: Path) -> None:
    out, truth = _generate(tmp_path)
    record(truth, DemoProduct(**{**PRODUCT.__dict__, "seed": 14}))
    with pytest.raises(ValueError, match="regenerate the demo"):
        next_day(out, truth)


def test_covers_only_the_same_product_and_days() -> None:
    same = {"users": 80, "seed": 13, "defect_rate": 0.0, "history_days": 10}
    assert PRODUCT.covers(PRODUCT.last_day, PRODUCT.last_day, **same)
    assert not PRODUCT.covers(date(2026, 3, 8), date(2026, 3, 8), **same)
    assert not PRODUCT.covers(START, START, **{**same, "seed": 1})
