"""Writing one SaaS demo day into the landing layout (events JSON lines with injected defects,
CRM contacts CSV, invoices parquet) and the hidden ground truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from demo import output as out
from demo import saas_model as m
from demo.saas_oracle import forward_outcomes
from demo.saas_sim import TRACK, US_PER_DAY, DemoSummary, Simulation
from demo.truth_columns import churn_column, conversion_column, revenue_column

DEFECT_KINDS = (
    "duplicate_same_day",
    "duplicate_next_day",
    "late_within_window",
    "late_beyond_window",
    "malformed_json",
    "null_user_id",
    "null_user_and_anonymous_id",
    "unknown_event",
)
EXPECTED = {
    "duplicate_same_day": "dedupe",
    "duplicate_next_day": "dedupe",
    "late_within_window": "load",
    "late_beyond_window": "quarantine:outside_late_window",
    "malformed_json": "quarantine:malformed_json",
    "null_user_id": "load",
    "null_user_and_anonymous_id": "quarantine:null_key",
    "unknown_event": "quarantine:unknown_event",
    "negative_amount": "quarantine:negative_amount",
}


def _inject_event_defects(
    sim: Simulation, ev: dict[str, np.ndarray], is_last_day: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick rows for each defect kind (rate split evenly across kinds). Returns the per-row
    defect label, the rows to duplicate within the day and the rows to re-send tomorrow."""
    rng = sim.rng
    n = len(ev["ts_us"])
    label = np.full(n, "", dtype=object)
    empty = np.zeros(0, np.int64)
    if sim.defect_rate <= 0 or n == 0:
        return label, empty, empty
    free = np.ones(n, bool)
    chosen: dict[str, np.ndarray] = {}
    eligible = {
        "null_user_id": ev["with_user"] & (ev["type"] == TRACK),
        "unknown_event": ev["type"] == TRACK,
    }
    for kind in DEFECT_KINDS:
        count = rng.binomial(n, sim.defect_rate / len(DEFECT_KINDS))
        pool = np.flatnonzero(free & eligible.get(kind, True))
        rows = rng.choice(pool, min(count, len(pool)), replace=False) if count else empty
        free[rows] = False
        chosen[kind] = np.sort(rows)
    window = sim.late_window_days
    lat = chosen["late_within_window"]
    ev["ts_us"][lat] -= rng.integers(1, window + 1, len(lat)) * US_PER_DAY
    lat = chosen["late_beyond_window"]
    ev["ts_us"][lat] -= rng.integers(window + 1, window + 8, len(lat)) * US_PER_DAY
    unk = chosen["unknown_event"]
    ev["name_code"][unk] = rng.choice(sim.names.unknown_codes, len(unk))
    for kind in DEFECT_KINDS:
        if not kind.startswith("duplicate_"):  # duplicates are extra rows, not labelled ones
            label[chosen[kind]] = kind
    dup_next = chosen["duplicate_next_day"]
    dup_same = chosen["duplicate_same_day"]
    if is_last_day:
        dup_same, dup_next = np.sort(np.concatenate([dup_same, dup_next])), empty
    return label, dup_same, dup_next


def write_day(
    sim,
    conn,
    params,
    out_dir: Path,
    d: int,
    day: date,
    contacts,
    invoices,
    ev,
    carried: list[tuple[str, dict]],
    defects: list[dict],
    summary: DemoSummary,
):
    rng, tag = sim.rng, day.isoformat()
    rel_events = f"events/dt={tag}/events-{tag}.jsonl"
    # received_at: a moment after the event (seconds, sometimes minutes for queued clients)
    n = len(ev["ts_us"])
    delay = rng.lognormal(np.log(0.8e6), 1.0, n).astype(np.int64)
    delay += np.where(rng.random(n) < 0.03, rng.integers(60, 1800, n) * 1_000_000, 0)
    ev["recv_us"] = ev["ts_us"] + delay
    order = np.lexsort((np.arange(n), ev["ts_us"]))
    ev = {k: v[order] for k, v in ev.items()}
    label, dup_same, dup_next = _inject_event_defects(sim, ev, d == sim.days - 1)
    mids = out.seeded_uuids(rng, n)
    visitor_ids = out.seeded_uuids(rng, int(ev["visitor"].max()) + 1 if n else 0)
    rows = np.concatenate([np.arange(n), dup_same])
    table = pa.table(
        {
            "row_no": np.arange(len(rows)),
            "user_pos": ev["user_pos"][rows].astype(np.int64),
            "with_user": ev["with_user"][rows].astype(bool),
            "type": ev["type"][rows].astype(np.int64),
            "name_code": ev["name_code"][rows].astype(np.int64),
            "ts_us": ev["ts_us"][rows].astype(np.int64),
            "recv_us": ev["recv_us"][rows].astype(np.int64),
            "prop_kind": ev["prop_kind"][rows].astype(np.int64),
            "plan": ev["plan"][rows].astype(np.int64),
            "from_plan": ev["from_plan"][rows].astype(np.int64),
            "amount": ev["amount"][rows].astype(np.float64),
            "detail": ev["detail"][rows].astype(np.int64),
            "page": np.where(
                ev["page"][rows] < 0, len(sim.names.paths) - 1, ev["page"][rows]
            ).astype(np.int64),
            "visitor_anonymous_id": pa.array(
                [None] * len(rows)
                if not len(visitor_ids)
                else np.where(
                    ev["visitor"][rows] >= 0,
                    visitor_ids[np.maximum(ev["visitor"][rows], 0)].astype(str),
                    None,
                ),
                type=pa.string(),
            ),
            "mid": out.to_arrow_strings(mids[rows]) if len(rows) else pa.array([], pa.string()),
            "defect": pa.array(
                np.concatenate([label, np.full(len(dup_same), "", object)]).astype(str)
            ),
        }
    )
    lines = out.event_lines(conn, table, params)
    body = out.lines_bytes(lines)
    tail = "".join(text for text, _ in carried).encode()
    out.write_bytes(out_dir / rel_events, body + tail)
    summary.files_written += 1
    summary.rows["events"] += len(rows) + len(carried)
    for r in np.flatnonzero(label != ""):
        defects.append(
            {
                "kind": label[r],
                "table": "events",
                "dt": tag,
                "file": rel_events,
                "line": int(r) + 1,
                "message_id": mids[r].decode(),
                "invoice_id": None,
            }
        )
    for i, r in enumerate(dup_same):
        defects.append(
            {
                "kind": "duplicate_same_day",
                "table": "events",
                "dt": tag,
                "file": rel_events,
                "line": n + i + 1,
                "message_id": mids[r].decode(),
                "invoice_id": None,
            }
        )
    for i, (_, rec) in enumerate(carried):
        defects.append({**rec, "dt": tag, "file": rel_events, "line": len(rows) + i + 1})
    next_carried = []
    if len(dup_next):
        py_lines = lines.to_pylist()
        for r in dup_next:
            next_carried.append(
                (
                    py_lines[r],
                    {
                        "kind": "duplicate_next_day",
                        "table": "events",
                        "message_id": mids[r].decode(),
                        "invoice_id": None,
                    },
                )
            )
    if contacts is not None and len(contacts):
        _write_contacts(sim, conn, out_dir, tag, contacts, summary)
    if invoices is not None and len(invoices):
        _write_invoices(sim, out_dir, tag, invoices, defects, summary)
    return next_carried


def _write_contacts(sim, conn, out_dir: Path, tag: str, rows: pd.DataFrame, summary) -> None:
    pop, pos = sim.pop, rows["pos"].to_numpy()
    table = pa.table(
        {
            "row_no": np.arange(len(rows)),
            "user_id": sim.user_ids[pos].astype(str),
            "email": sim.emails[pos],
            "company": sim.companies[pos],
            "signup_at": pd.to_datetime(rows["signup_us"].to_numpy(), unit="us"),
            "industry": np.array(m.INDUSTRIES)[pop.industry[pos]],
            "company_size": np.array(m.COMPANY_SIZES)[pop.size[pos]],
            "country": np.array(m.COUNTRIES)[pop.country[pos]],
            "role": np.array(m.ROLES)[pop.role[pos]],
            "plan": np.array(m.PLANS)[rows["plan"].to_numpy()],
            "acquisition_channel": np.array(m.CHANNELS)[pop.channel[pos]],
            "updated_at": pd.to_datetime(rows["updated_us"].to_numpy(), unit="us"),
        }
    )
    out.write_contacts_csv(conn, table, out_dir / f"crm_contacts/dt={tag}/contacts-{tag}.csv")
    summary.files_written += 1
    summary.rows["crm_contacts"] += len(rows)


def _write_invoices(
    sim, out_dir: Path, tag: str, rows: pd.DataFrame, defects: list[dict], summary
) -> None:
    rel = f"billing_invoices/dt={tag}/invoices-{tag}.parquet"
    if sim.defect_rate > 0:
        bad = np.flatnonzero(sim.rng.random(len(rows)) < sim.defect_rate)
        rows.loc[bad, "amount"] = -rows.loc[bad, "amount"]
        for r in bad:
            defects.append(
                {
                    "kind": "negative_amount",
                    "table": "billing_invoices",
                    "dt": tag,
                    "file": rel,
                    "line": int(r) + 1,
                    "message_id": None,
                    "invoice_id": rows.at[r, "invoice_id"],
                }
            )
    table = pa.Table.from_pandas(rows, preserve_index=False)
    out.write_parquet(table, out_dir / rel)
    summary.files_written += 1
    summary.rows["billing_invoices"] += len(rows)


def truth_for_day(sim: Simulation, d: int, day: date) -> pd.DataFrame:
    """Truth at the end of `day` for every user signed up by then; users already gone have
    probability 1 of churning and of staying inactive, 0 of converting or cancelling."""
    signed = np.flatnonzero(sim.signed)
    here = sim.alive[signed]
    idx = signed[here]
    h_exit, h_up = sim.hazards(idx)
    h_cancel_paid = m.cancel_hazard(
        sim.pop,
        idx,
        sim.days_inactive[idx],
        sim.feature_use[idx],
        sim.tickets_recent[idx],
        sim.dunning[idx],
    )
    since_anchor = np.where(sim.anchor[idx] >= 0, d - sim.anchor[idx], 0)
    truth = m.truth_snapshot(
        sim.pop,
        idx,
        h_exit,
        h_up,
        h_cancel_paid,
        sim.plan[idx],
        since_anchor,
        sim.conversion_days,
        sim.ltv_days,
    )
    if sim.oracle_replicas:
        h = sim.horizon_days
        outcomes = forward_outcomes(sim, d, idx, h, sim.oracle_replicas, sim.seed)
        truth[f"p_cancel_{h}d"] = outcomes["p_cancel"]
        truth[f"p_inactive_{h}d"] = outcomes["p_inactive"]
    gone = {churn_column(28): 1.0}  # gone: churned and inactive for sure, nothing else
    gone |= {c: (1.0 if c.startswith("p_inactive") else 0.0) for c in truth if c not in gone}
    columns = {}
    for name, values in {"churn_hazard_daily": h_exit, **truth}.items():
        full = np.full(len(signed), gone.get(name, 0.0))
        full[here] = values
        columns[name] = full
    return pd.DataFrame(
        {
            "user_id": sim.user_ids[signed].astype(str),
            "snapshot_date": pd.Timestamp(day),
            "alive": here,
            "plan": np.array(m.PLANS)[sim.plan[signed]],
            "latent_type": np.array(m.LATENT_TYPES)[sim.pop.latent[signed]],
            **columns,
        }
    )


def write_truth(
    sim: Simulation, truth_dir: Path, parts: list[pd.DataFrame], defects: list[dict]
) -> None:
    cols = [
        "user_id",
        "snapshot_date",
        "plan",
        "latent_type",
        "churn_hazard_daily",
        churn_column(28),
        conversion_column(sim.conversion_days),
        revenue_column(sim.ltv_days),
    ]
    weekly = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    weekly["snapshot_date"] = pd.to_datetime(weekly["snapshot_date"]).dt.date
    weekly.to_parquet(truth_dir / "truth_weekly.parquet", index=False)
    start = pd.Timestamp(sim.start)

    def day_or_null(days: np.ndarray) -> pd.Series:
        dates = pd.Series(start + pd.to_timedelta(np.maximum(days, 0), unit="D"))
        return dates.where(days >= 0)

    signed = np.flatnonzero(sim.signed)
    pd.DataFrame(
        {
            "user_id": sim.user_ids[signed].astype(str),
            "latent_type": np.array(m.LATENT_TYPES)[sim.pop.latent[signed]],
            "signup_date": (start + pd.to_timedelta(sim.pop.signup_day[signed], unit="D")).date,
            "churn_date": day_or_null(sim.churn_day[signed]).dt.date,
            "last_cancel_date": day_or_null(sim.cancel_day[signed]).dt.date,
            "first_paid_date": day_or_null(sim.first_paid_day[signed]).dt.date,
        }
    ).to_parquet(truth_dir / "truth_users.parquet", index=False)
    manifest = pd.DataFrame(
        defects, columns=["kind", "table", "dt", "file", "line", "message_id", "invoice_id"]
    )
    manifest["expected"] = manifest["kind"].map(EXPECTED)
    manifest.to_parquet(truth_dir / "defects.parquet", index=False)
