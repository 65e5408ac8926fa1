"""Each record's fields are declared once: the table's columns follow the domain models."""

from __future__ import annotations

from dataclasses import fields
from typing import cast

from sqlalchemy import Table

from jobs.contract import AudioAnalysis
from jobs.db.tables import ANALYSIS_COLUMNS, ANALYSIS_PREFIX, FileRow, JobRow
from jobs.models import AudioFile, Job


def test_the_file_table_holds_each_analysis_field_and_each_file_field() -> None:
    columns = set(cast(Table, FileRow.__table__).c.keys())
    analysis = {c for c in columns if c.startswith(ANALYSIS_PREFIX)}
    assert analysis == {ANALYSIS_PREFIX + name for name in AudioAnalysis.model_fields}
    assert analysis == set(ANALYSIS_COLUMNS.values())
    assert {f.name for f in fields(AudioFile)} <= columns


def test_the_job_table_holds_each_job_field() -> None:
    columns = set(cast(Table, JobRow.__table__).c.keys())
    assert {f.name for f in fields(Job)} <= columns
