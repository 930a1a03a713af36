"""Run a table's suites in a GX context and turn the results into `CheckOutcome`s.

The caller passes an open DuckDB connection (the Dagster wiring's single-writer pool) and
optionally a GX directory (`<SEGFLOW_HOME>/gx`): with one, suites, results and Data Docs are
written there; without one, an ephemeral context is used and no HTML is built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import great_expectations as gx
import pandas as pd
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

from expectations import gx_fast
from expectations.config import QualityConfig
from expectations.frames import declared_columns, partition_frame, row_frame, schema_frame
from expectations.gx_loading import data_docs_once, pending_docs
from expectations.gx_outcomes import merge_chunk_outcomes, rule_outcome
from expectations.outcome import CheckOutcome, SuiteResult
from expectations.rules import Rule
from expectations.suites import partition_rules, row_rules, schema_rules
from expectations.tables import TableSpec, table_spec

DOCS_SITE = "segflow"
_DATASOURCE = "segflow_duckdb_frames"
_DIGEST = "segflow_rules_sha256"
gx_fast.install()  # fewer configuration builds and plain metric ids in GX (gx_fast.py)
__all__ = ["build_data_docs", "data_docs_once", "open_context", "validate_table"]


def open_context(gx_dir: Path | None) -> Any:
    """A file context rooted at `gx_dir` (Data Docs under `gx_dir/data_docs`) or ephemeral."""
    if gx_dir is None:
        context = gx.get_context(mode="ephemeral")
    else:
        gx_dir = Path(gx_dir)
        context = gx.get_context(mode="file", context_root_dir=str(gx_dir))
        docs = str((gx_dir / "data_docs").resolve())
        site = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs},
        }
        sites = context.variables.data_docs_sites or {}
        if DOCS_SITE not in sites:
            context.add_data_docs_site(site_name=DOCS_SITE, site_config=site)
        elif sites[DOCS_SITE].get("store_backend", {}).get("base_directory") != docs:
            # a moved or copied SEGFLOW_HOME: its pages went to the old folder, its link here
            context.update_data_docs_site(site_name=DOCS_SITE, site_config=site)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate_table(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    partition_dates: Sequence[date],
    config: QualityConfig | None = None,
    *,
    gx_dir: Path | None = None,
    now: datetime | None = None,
    spec: TableSpec | None = None,
) -> SuiteResult:
    """Validate `table`'s partitions (read-only) and return every check's outcome.

    `table` is "events"/"raw.events"/"fct_user_features"...; `now` (naive UTC) defaults to the
    current time and bounds "not in the future"; `spec` overrides the table's default shape
    (e.g. `features_spec(plan)` for another tracking plan).
    """
    config = config or QualityConfig()
    spec = spec or table_spec(table)
    dates = sorted(set(partition_dates))
    now = now or datetime.now(UTC).replace(tzinfo=None)
    suite_name = f"{spec.schema}_{spec.short_name}"
    declared = declared_columns(conn, spec)
    if declared is None:
        missing = CheckOutcome(
            check=f"{spec.short_name}.table.exists",
            table=spec.name,
            column=None,
            expectation="table_exists",
            severity="error",
            passed=False,
            expected=f"table {spec.name} in the warehouse",
            message=f"{spec.name} does not exist in the warehouse: expected the table "
            f"(load or build it first); found no such table",
            partitions=[d.isoformat() for d in dates],
        )
        return SuiteResult(suite_name, spec.name, dates, 0, [missing], None, now)

    context = open_context(gx_dir)
    run_time = datetime.now(UTC)
    suite_prefix = f"{spec.schema}_{spec.short_name}"
    schema_outcomes, schema_id = _run_frame(
        context,
        f"{suite_prefix}__schema",
        schema_frame(declared),
        schema_rules(spec),
        [],
        spec,
        dates,
        config,
        _run_id(spec, dates, run_time),
    )
    stored = [schema_id]
    per_chunk: list[list[CheckOutcome]] = []
    row_count = 0
    if spec.partition_column in declared:
        # a chunk of days at a time bounds memory on long backfills; outcomes are merged
        for chunk in _chunks(dates, config.chunk_days):
            run_id = _run_id(spec, chunk, run_time)
            rows = row_frame(conn, spec, declared, chunk, config)
            row_count += len(rows)
            locators = [c for c in spec.locator_columns if c in rows.columns]
            chunk_outcomes, rows_id = _run_frame(
                context,
                f"{suite_prefix}__rows",
                rows,
                row_rules(spec, rows.columns, config, now),
                locators,
                spec,
                chunk,
                config,
                run_id,
            )
            del rows
            parts = partition_frame(conn, spec, declared, chunk, config)
            part_outcomes, parts_id = _run_frame(
                context,
                f"{suite_prefix}__partitions",
                parts,
                partition_rules(spec, config),
                ["partition_date"],
                spec,
                chunk,
                config,
                run_id,
            )
            per_chunk.append(chunk_outcomes + part_outcomes)
            stored += [rows_id, parts_id]
    outcomes = schema_outcomes + merge_chunk_outcomes(per_chunk, spec, dates, config)
    docs_index = None
    if gx_dir is not None:
        prune_validation_results(context, config.gx_keep_results)
        pending = pending_docs()
        if pending is None:
            docs_index = build_data_docs(context, gx_dir, stored)
        else:
            pending.setdefault(Path(gx_dir), []).extend(stored)
            docs_index = _docs_index(gx_dir)
    return SuiteResult(suite_name, spec.name, dates, row_count, outcomes, docs_index, now)


def _chunks(dates: list[date], size: int) -> list[list[date]]:
    size = max(int(size), 1)
    return [dates[i : i + size] for i in range(0, len(dates), size)] or [[]]


def _run_id(spec: TableSpec, dates: list[date], run_time: datetime) -> RunIdentifier:
    span = f"{dates[0]}_{dates[-1]}" if dates else "no_partitions"
    return RunIdentifier(run_name=f"{spec.short_name}_{span}", run_time=run_time)


def build_data_docs(
    context: Any,
    gx_dir: Path,
    results: list[ValidationResultIdentifier] | None = None,
) -> Path:
    """Render the HTML site with GX's own builder (only `results`' pages + the index when
    given); returns index.html, checked to exist."""
    with gx_fast.index_reads_once(context, gx_dir):
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=results or None)
    index = _docs_index(gx_dir)
    if not index.is_file():
        raise RuntimeError(f"GX Data Docs build finished but {index} was not written")
    return index


def _docs_index(gx_dir: Path) -> Path:
    return (Path(gx_dir) / "data_docs" / "index.html").resolve()


def prune_validation_results(context: Any, keep: int) -> int:
    """Keep the newest `keep` stored results per suite so the Data Docs index stays small;
    returns how many were removed (their old HTML pages stay on disk, unlinked)."""
    store = context.validation_results_store
    by_suite: dict[str, list[Any]] = {}
    for key in store.list_keys():
        by_suite.setdefault(key.expectation_suite_identifier.name, []).append(key)
    removed = 0
    for keys in by_suite.values():
        keys.sort(key=lambda k: str(k.run_id.run_time))
        for key in keys[: max(len(keys) - keep, 0)]:
            store.remove_key(key)
            removed += 1
    return removed


def _stored_definition(context: Any, name: str, batch: Any, rules: list[Rule]) -> Any:
    """The suite and validation definition `name`, written only when the rules changed.

    GX's add_or_update compares every expectation with every stored one (quadratic, pydantic
    dicts): seconds per suite and most of a small day's quality step. A digest of the rules'
    configurations in the suite's meta says whether the stored pair is still current."""
    expectations = [r.expectation for r in rules]
    digest = hashlib.sha256(
        json.dumps(
            [e.configuration.to_json_dict() for e in expectations], sort_keys=True, default=str
        ).encode()
    ).hexdigest()
    try:
        definition = context.validation_definitions.get(name)
        if definition.suite.meta.get(_DIGEST) == digest:
            return definition
    except Exception:  # noqa: BLE001 - not stored yet or unreadable: (re)write below
        pass
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=name, expectations=expectations, meta={_DIGEST: digest})
    )
    return context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )


def _frame_batch(context: Any, name: str) -> Any:
    """The whole-dataframe batch definition of frame asset `name`, added only when missing:
    each add (or add_or_update of the data source, which also drops its stored assets)
    rewrites the project's config file, a dozen times per run before."""
    try:
        source = context.data_sources.get(_DATASOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(name=_DATASOURCE)
    asset = next((a for a in source.assets if a.name == name), None)
    asset = asset or source.add_dataframe_asset(name=name)
    batch = next((b for b in asset.batch_definitions if b.name == "whole"), None)
    return batch or asset.add_batch_definition_whole_dataframe("whole")


def _run_frame(
    context: Any,
    name: str,
    frame: pd.DataFrame,
    rules: list[Rule],
    locators: list[str],
    spec: TableSpec,
    dates: list[date],
    config: QualityConfig,
    run_id: RunIdentifier,
) -> tuple[list[CheckOutcome], ValidationResultIdentifier]:
    definition = _stored_definition(context, name, _frame_batch(context, name), rules)
    result_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": config.sample_size,
    }
    if locators:
        result_format["unexpected_index_column_names"] = locators
    # Copy-on-write: GX filters the whole frame by `column.notnull()` for every column check,
    # and without it an all-true filter deep-copies every column (~300 copies of 100k x 90);
    # with it the copy is lazy. Nothing here writes to the frames, so the outcomes are equal.
    with pd.option_context("mode.copy_on_write", True):
        result = definition.run(
            batch_parameters={"dataframe": frame}, result_format=result_format, run_id=run_id
        )
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=name),
        run_id=run_id,
        batch_identifier=result.batch_id,
    )
    by_check = {r.expectation_config.meta.get("check"): r for r in result.results}
    return [rule_outcome(rule, by_check.get(rule.name), spec, dates) for rule in rules], result_id
