"""One Spark process at a time per metastore: a clear error instead of a hang.

The `spark` dbt target (and orchestration.spark.session) keep their catalog in an embedded
Derby database under SEGFLOW_SPARK_DIR/metastore_db. Derby lets one process boot it; a second
Spark process on the same folder fails deep inside the Hive client (or waits) with no word of
why. Every Spark process segflow starts holds an exclusive lock file beside the metastore for
its lifetime; a second one fails at once naming the folder, the holder and the ways out (wait,
or give the run its own SEGFLOW_SPARK_DIR). A lock left by a dead process is free again
(flock locks die with their process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class MetastoreBusyError(RuntimeError):
    """Another process holds the Spark engine's Derby metastore."""


def lock_file(metastore: Path) -> Path:
    return metastore.parent / f"{metastore.name}.segflow-lock"


@contextmanager
def exclusive(metastore: Path | str) -> Iterator[None]:
    """Hold the metastore for the block; MetastoreBusyError at once when another process does."""
    metastore = Path(metastore)
    path = lock_file(metastore)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise MetastoreBusyError(
                f"the Spark metastore {metastore} is in use by another process (pid {holder}); "
                "its embedded Derby database allows one Spark process at a time. Wait for it "
                "to finish, or give this run its own SEGFLOW_SPARK_DIR (a per-run metastore "
                "and warehouse), or use a shared Hive metastore on a real cluster."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def for_dbt(target: str, metastore: Path | str) -> contextlib.AbstractContextManager[None]:
    """The lock a dbt invocation on `target` holds: the metastore's on the `spark` target
    (dbt-spark's session runs in the dbt process), nothing on any other or when this process
    holds it already (hold_for_process)."""
    if target != "spark" or _HELD:  # this process already holds it for its lifetime
        return contextlib.nullcontext()
    return exclusive(metastore)


_HELD: list = []  # the lock of this process's long-lived Spark session


def held() -> bool:
    """Whether this process holds its metastore (it started its Spark engine)."""
    return bool(_HELD)


def hold_for_process(metastore: Path | str) -> None:
    """Take the metastore until this process exits (a Spark session's JVM keeps Derby booted
    after session.stop(), so the lock is not released earlier)."""
    if not _HELD:
        context = exclusive(metastore)
        context.__enter__()
        _HELD.append(context)
