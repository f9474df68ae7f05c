"""The self-contained HTML report of a run or an evaluation.

It owns the report's data (`data`), reading it from a run directory (`rundata`), and
the figures and the page (`html`, with `report.html.j2`). It imports every layer below it.
"""

from grpo_dsl.report.data import (
    REPORT_DATA_SCHEMA,
    AblationData,
    ExperienceChange,
    ItemData,
    ReportData,
    ReportDataError,
    StageCost,
    StepData,
    library_changes,
)
from grpo_dsl.report.html import render_report

__all__ = [
    "REPORT_DATA_SCHEMA",
    "AblationData",
    "ExperienceChange",
    "ItemData",
    "ReportData",
    "ReportDataError",
    "StageCost",
    "StepData",
    "library_changes",
    "render_report",
]
