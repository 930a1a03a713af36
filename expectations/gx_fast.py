"""Two of GX's per-expectation costs, cut with the same results (same values, less work).

1. One configuration per kwargs lookup in GX's Expectation.

GX 1.x builds `Expectation.configuration` afresh on every access (a pydantic `.dict()` with
deep copies, then an ExpectationConfiguration), and `_get_runtime_kwargs` reads it once per
runtime, success and domain key (~20 builds per call, several calls per expectation): with
~210 expectations per features suite that was the largest single cost of the suite (27k
builds for one day). The replacements below build it once per call and read every key from
that one; everything else (defaults, the missing-key warning, result-format parsing) is GX's
code line for line. `configuration` is a pure function of the expectation's fields, and none
of these methods changes a field, so every returned value is equal to GX's own.

2. Metric ids without the slow path for plain values. `IDDict.to_id` (the id of every
metric configuration: several per expectation) passes its dict through
`convert_to_json_serializable`, where a None (row_condition, condition_parser) falls through
four numpy dtype tests before it is returned unchanged: a fifth of a features suite's time.
Plain JSON values (str, int, bool, None, finite floats; dicts with text keys and lists of
them) are returned unchanged by it, so they are hashed as they are; anything else still goes
through it.

3. The Data Docs index reads each stored result once per process. GX's index builder loads
every stored validation result (up to SEGFLOW_DQ_GX_KEEP_RESULTS per suite, full JSON with
every expectation's result) on every build, i.e. four times a daily run, to read its success
flag and meta. A stored result never changes (each run writes a new key), so while a build
runs, those reads return a light copy (success, suite, meta, batch id; no per-expectation
results) remembered per store folder and key; the pages themselves still read the store.

Applied only to the GX version whose code these were checked against, and only while the
methods are still GX's originals (their source digest below); any other version keeps GX's
own methods (correct, just slower). tests/test_expectations_gx_fast.py compares both.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
)
from great_expectations.core.id_dict import IDDict, convert_to_json_serializable
from great_expectations.exceptions import InvalidExpectationKwargsError
from great_expectations.expectations.expectation import Expectation, parse_result_format

logger = logging.getLogger("great_expectations.expectations.expectation")

CHECKED_VERSION = "1.24.1"
# sha256 of the source of GX's five methods as released in CHECKED_VERSION
ORIGINAL_DIGEST = "729fac3e16f579d70817654057193990dabc3dc6470b9b3b4c66f82712f13c99"
NAMES = ("_get_success_kwarg", "_get_domain_kwargs", "_get_success_kwargs", "_get_runtime_kwargs")
ORIGINALS = {name: getattr(Expectation, name) for name in NAMES}
ORIGINAL_TO_ID = IDDict.to_id


def _kwarg(self: Any, kwargs: dict, key: str, default: Any = None) -> Any:
    """GX's `_get_success_kwarg` with the configuration's kwargs passed in."""
    if key in kwargs:
        return kwargs[key]
    field = self.__fields__.get(key)
    if field is not None:
        return field.default if not field.required else default
    logger.warning(
        f'_get_success_kwarg called with key "{key}", '
        f"but it is not a known field of {type(self).__name__}"
    )
    return default


def _domain(self: Any, kwargs: dict) -> dict[str, Any]:
    """GX's `_get_domain_kwargs` with the configuration's kwargs passed in."""
    domain_kwargs = {key: kwargs.get(key, self._get_default_value(key)) for key in self.domain_keys}
    missing_kwargs = set(self.domain_keys) - set(domain_kwargs.keys())
    if missing_kwargs:
        raise InvalidExpectationKwargsError(f"Missing domain kwargs: {list(missing_kwargs)}")
    return domain_kwargs


def _success(self: Any, kwargs: dict) -> dict[str, Any]:
    """GX's `_get_success_kwargs` with the configuration's kwargs passed in."""
    domain_kwargs = _domain(self, kwargs)
    success_kwargs = {
        key: kwargs.get(key, self._get_default_value(key)) for key in self.success_keys
    }
    success_kwargs.update(domain_kwargs)
    return success_kwargs


def get_success_kwarg(self: Any, key: str, default: Any = None) -> Any:
    return _kwarg(self, self.configuration.kwargs, key, default)


def get_domain_kwargs(self: Any) -> dict[str, Any]:
    return _domain(self, self.configuration.kwargs)


def get_success_kwargs(self: Any) -> dict[str, Any]:
    return _success(self, self.configuration.kwargs)


def get_runtime_kwargs(self: Any, runtime_configuration: dict | None = None) -> dict:
    runtime_configuration = runtime_configuration or {}
    kwargs = self.configuration.kwargs
    success_kwargs = _success(self, kwargs)
    runtime_kwargs = {
        key: runtime_configuration.get(key, _kwarg(self, kwargs, key)) for key in self.runtime_keys
    }
    runtime_kwargs.update(success_kwargs)
    runtime_kwargs["result_format"] = parse_result_format(runtime_kwargs["result_format"])
    return runtime_kwargs


REPLACEMENTS = dict(
    zip(
        NAMES,
        (get_success_kwarg, get_domain_kwargs, get_success_kwargs, get_runtime_kwargs),
        strict=True,
    )
)


def _plain(value: Any) -> bool:
    """True when convert_to_json_serializable returns `value` as it is (JSON-equal)."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return True
    if kind is float:
        return not math.isnan(value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


def to_id(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
    """GX's `IDDict.to_id`, hashing plain values without converting them."""
    if id_keys is None:
        id_keys = self.keys()
    if id_ignore_keys is None:
        id_ignore_keys = self._id_ignore_keys
    id_keys = set(id_keys) - set(id_ignore_keys)
    if len(id_keys) == 0:
        return ()
    elif len(id_keys) == 1:
        key = list(id_keys)[0]
        return f"{key}={self[key]!s}"
    data = {k: self[k] for k in id_keys}
    _id_dict = data if _plain(data) else convert_to_json_serializable(data=data)
    return hashlib.md5(
        json.dumps(_id_dict, sort_keys=True).encode("utf-8"), usedforsecurity=False
    ).hexdigest()


def original_digest() -> str:
    source = "".join(inspect.getsource(ORIGINALS[name]) for name in NAMES)
    source += inspect.getsource(ORIGINAL_TO_ID)
    return hashlib.sha256(source.encode()).hexdigest()


def applicable() -> bool:
    """True on the checked GX version with its methods unchanged."""
    return gx.__version__ == CHECKED_VERSION and original_digest() == ORIGINAL_DIGEST


def install() -> bool:
    """Use the replacements (idempotent); False (GX's own kept) when not applicable."""
    if not applicable():
        return False
    for name, method in REPLACEMENTS.items():
        setattr(Expectation, name, method)
    IDDict.to_id = to_id
    return True


# (store folder, suite, run id, batch id, store name) -> light copy of a stored result
_INDEX_ENTRIES: dict[tuple, ExpectationSuiteValidationResult] = {}


@contextmanager
def index_reads_once(context: Any, root: Path) -> Iterator[None]:
    """While GX builds Data Docs in `context` (rooted at `root`): its index builder's
    `get_validation_result` calls (keyword calls, the only kind it makes) return the light
    copy remembered for that stored result, read from the store the first time."""
    original = context.get_validation_result

    def read(*args: Any, **kwargs: Any) -> Any:
        run_id = kwargs.get("run_id")
        if args or run_id is None:
            return original(*args, **kwargs)
        key = (
            str(Path(root).resolve()),
            kwargs.get("expectation_suite_name"),
            str(run_id.to_tuple()) if hasattr(run_id, "to_tuple") else str(run_id),
            str(kwargs.get("batch_identifier")),
            kwargs.get("validation_results_store_name"),
        )
        if key not in _INDEX_ENTRIES:
            result = original(*args, **kwargs)
            if not isinstance(result, ExpectationSuiteValidationResult):
                return result  # not found ({}): asked again next build
            _INDEX_ENTRIES[key] = ExpectationSuiteValidationResult(
                success=result.success,
                results=[],
                suite_name=result.suite_name,
                meta=result.meta,
                batch_id=result.batch_id,
            )
        return _INDEX_ENTRIES[key]

    context.get_validation_result = read
    try:
        yield
    finally:
        del context.get_validation_result
