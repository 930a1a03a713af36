"""Advance the demo product by one day: the same customers, history and seed, one more day.

`generate` draws its population for a fixed horizon, so asking it for one more day would draw a
different product. Instead the product's parameters are recorded next to the ground truth when
the CLI generates it (`record`), and `next_day` replays the simulation day by day with the same
seed into a scratch folder (each day consumes the random stream the same way), checks that the
replay reproduces the landing folder's last day byte for byte, then simulates one day past the
horizon and writes only that day. New customers keep signing up past the horizon (the growth
curve continued, drawn from streams of their own, so the replayed days stay byte-identical);
existing customers go on cancelling, upgrading and using the product.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

from contracts.raw import RAW_TABLES
from demo.saas import DemoSummary, run_days
from demo.saas_sim import Simulation

PARAMS_FILE = "demo_product.json"


@dataclass(frozen=True)
class DemoProduct:
    """What `generate` was asked for, plus the days added after it."""

    users: int
    days: int
    seed: int
    start: str
    defect_rate: float
    history_days: int
    late_window_days: int = 3
    extra_days: int = 0

    def covers(self, start: date, end: date, **asked) -> bool:
        """Whether this product, as asked for again, already holds [start, end]."""
        same = all(getattr(self, key) == value for key, value in asked.items())
        return same and date.fromisoformat(self.start) <= start and end <= self.last_day

    @property
    def last_day(self) -> date:
        return date.fromisoformat(self.start) + timedelta(days=self.days + self.extra_days - 1)


def record(truth_dir: Path, product: DemoProduct) -> None:
    Path(truth_dir).mkdir(parents=True, exist_ok=True)
    (Path(truth_dir) / PARAMS_FILE).write_text(json.dumps(asdict(product), indent=2))


def load(truth_dir: Path) -> DemoProduct | None:
    path = Path(truth_dir) / PARAMS_FILE
    return DemoProduct(**json.loads(path.read_text())) if path.exists() else None


def _day_files(root: Path, day: date) -> dict[str, str]:
    """Relative path -> sha1 of every landing file of one day."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.glob(f"*/dt={day.isoformat()}/*"))
        if p.is_file()
    }


def _replay(product: DemoProduct, scratch: Path, write_to: dict[int, Path]) -> None:
    """Run the simulation from its first day through the last wanted one; days listed in
    `write_to` are written there, every other written day to `scratch` (the random stream
    must be consumed exactly as `generate` did)."""
    start = date.fromisoformat(product.start)
    horizon = product.history_days + product.days
    sim = Simulation(
        product.users,
        horizon,
        product.seed,
        start - timedelta(days=product.history_days),
        product.defect_rate,
        product.late_window_days,
        product.extra_days,
    )
    summary = DemoSummary(
        scratch, scratch, product.users, product.days, product.seed, start, start, 0.0
    )
    summary.rows = dict.fromkeys(RAW_TABLES, 0)
    total = horizon + product.extra_days
    run_days(sim, product.history_days, total, lambda d: write_to.get(d, scratch), [], summary)


def next_day(out_dir: Path, truth_dir: Path) -> date:
    """Write the product's next day into `out_dir`; returns that day."""
    product = load(truth_dir)
    if product is None:
        raise ValueError(
            f"{Path(truth_dir) / PARAMS_FILE} not found: generate the demo first "
            "(`make run` or `segflow demo-data`), then advance it with --next-day"
        )
    last, new = product.last_day, product.last_day + timedelta(days=1)
    horizon = product.history_days + product.days
    with tempfile.TemporaryDirectory(prefix="segflow-next-day-") as tmp:
        scratch, staged = Path(tmp) / "replay", Path(tmp) / "new"
        following = DemoProduct(**{**asdict(product), "extra_days": product.extra_days + 1})
        _replay(following, scratch, {horizon + product.extra_days: staged})
        if _day_files(scratch, last) != _day_files(Path(out_dir), last):
            raise ValueError(
                f"{out_dir}: its last day {last} is not the one this product (seed "
                f"{product.seed}, {product.users} users) replays to; regenerate the demo"
            )
        for table_dir in staged.iterdir():
            target = Path(out_dir) / table_dir.name / f"dt={new.isoformat()}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(table_dir / f"dt={new.isoformat()}", target)
    record(truth_dir, following)
    return new
