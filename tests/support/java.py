"""The Java runtime the Spark engine needs (pyspark 4.x: Java 17+; `make java` installs it)."""

from __future__ import annotations

import shutil
import subprocess


def java_major() -> int:
    """The major version of `java` on PATH, 0 when there is none."""
    java = shutil.which("java")
    if java is None:
        return 0
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    version = out.split('"')[1] if '"' in out else "0"
    return int(version.split(".")[0])
