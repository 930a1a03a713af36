"""The static monitoring report: one self-contained folder of HTML pages with inline SVG
charts (Altair + vl-convert) that opens offline. Plain Python: the Dagster asset and the
`segflow report` command gather run history and registry data and pass them in."""

from orchestration.report.build import PAGE_ORDER, build_report
from orchestration.report.inputs import (
    ModelVersionInfo,
    ReportInputs,
    ReportResult,
    RunInfo,
)

__all__ = [
    "PAGE_ORDER",
    "ModelVersionInfo",
    "ReportInputs",
    "ReportResult",
    "RunInfo",
    "build_report",
]
