"""Rendered chart SVGs kept between report builds, by content: most of a day's charts change
(new day, new numbers) but some do not (model pages between trainings, experiment results),
and vl-convert costs 0.03-0.35 CPU s per chart at 100k users. The key is a digest of the
chart's full Vega-Lite spec (data included), the Vega-Lite and vl-convert versions and the
local time zone vl-convert formats dates in, so an entry is only reused for a chart that
would render to the same SVG. An SVG holding an id is never kept: the renderer numbers ids
(gradient legends) per process, so a reused one could repeat an id of a fresh chart on the
same page. The folder sits beside the report folder and keeps only the entries the last
build used."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


class SvgCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.used: set[str] = set()
        self.hits = self.rendered = 0

    @staticmethod
    def for_report(out_dir: Path) -> SvgCache:
        return SvgCache(out_dir.with_name(f".{out_dir.name}-svg-cache"))

    def svg(self, spec: dict[str, Any], vl_version: str, render) -> str:
        """The SVG of `spec`: from the cache, or `render(spec)` (then stored)."""
        import vl_convert as vlc

        text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
        identity = f"{vl_version}|{vlc.__version__}|{vlc.get_local_tz()}|{text}"
        key = hashlib.sha256(identity.encode("utf-8")).hexdigest()
        self.used.add(key)
        path = self.directory / f"{key}.svg"
        try:
            svg = path.read_text(encoding="utf-8")
            self.hits += 1
            return svg
        except OSError:
            pass
        svg = render(spec)
        self.rendered += 1
        if 'id="' in svg:  # ids are numbered per process (gradient_<n>): not reusable
            return svg
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{key}.{os.getpid()}.tmp")
        tmp.write_text(svg, encoding="utf-8")
        os.replace(tmp, path)  # a reader never sees half an entry
        return svg

    def prune(self) -> None:
        """Forget the entries this build did not use (the folder stays one day's charts)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.stem not in self.used:
                path.unlink(missing_ok=True)
