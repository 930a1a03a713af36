"""Where a local Spark JVM's CPU goes, by thread kind: JIT compilation, garbage collection, the
tasks (Spark's executor threads: the data work) and the rest (driver: parsing, planning, code
generation, the Derby metastore, file listing). Sampled from /proc every few seconds, each
thread's last value kept after it ends, so the split is load-independent like CPU seconds."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil

KINDS = (
    ("jit", ("C1 CompilerThre", "C2 CompilerThre")),
    ("gc", ("GC Thread", "G1 ", "VM Thread")),
    ("tasks", ("Executor task",)),
)


def thread_kind(name: str) -> str:
    return next((kind for kind, prefixes in KINDS if name.startswith(prefixes)), "driver_other")


class JvmCpu(threading.Thread):
    """Samples every Java process whose command line mentions `marker` (the run's folder)."""

    def __init__(self, marker: str, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.marker, self.every = marker, every
        self.seen: dict[tuple[int, int], tuple[str, float]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.sample()

    def sample(self) -> None:
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] != "java" or self.marker not in " ".join(
                proc.info["cmdline"] or ()
            ):
                continue
            for task in Path(f"/proc/{proc.pid}/task").glob("*"):
                try:
                    name = (task / "comm").read_text().strip()
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                ticks = int(fields[11]) + int(fields[12])  # utime + stime
                self.seen[(proc.pid, int(task.name))] = (thread_kind(name), ticks / 100)

    def stop(self) -> dict[str, float]:
        """CPU seconds per thread kind over the sampled JVMs."""
        self.sample()
        self.stopped.set()
        totals = dict.fromkeys([kind for kind, _ in KINDS] + ["driver_other"], 0.0)
        for kind, seconds in self.seen.values():
            totals[kind] += seconds
        return {kind: round(seconds, 1) for kind, seconds in totals.items()}
