"""The runs tables and migration 0002, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from core.database import migrate, open_database
from core.tables import Baseline, CaseResult, PromptVersion, Run

RUNS_TABLES = {"runs", "case_results", "baselines", "prompt_versions"}


def only_runs_tables(obj, name, type_, reflected, compare_to) -> bool:
    """Compare only this module's tables (other tables have their own migrations and tests)."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in RUNS_TABLES


def test_migration_creates_the_tables_the_models_describe(db_url):
    engine = open_database(db_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert RUNS_TABLES <= names
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": only_runs_tables})
            diff = compare_metadata(context, SQLModel.metadata)
        assert diff == []
        indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(engine).get_indexes("case_results")}
        assert indexes["ix_case_results_run_suite_case"] == ["run_id", "suite", "case_id"]
    finally:
        engine.dispose()


def test_downgrade_to_0001_drops_the_runs_tables(db_url):
    engine = open_database(db_url)
    try:
        migrate_down(engine)
        names = set(sa.inspect(engine).get_table_names())
        assert "runs" not in names and "case_results" not in names and "traffic" in names
        migrate(engine)
        assert "runs" in set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def migrate_down(engine: sa.Engine) -> None:
    from alembic import command
    from alembic.config import Config

    from core.database import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection_engine"] = engine
    command.downgrade(config, "0001")


def test_run_case_result_and_baseline_round_trip_with_json_and_aware_times(db_url):
    engine = open_database(db_url)
    started = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    try:
        with Session(engine) as session:
            session.add(Run(id="a" * 32, started_at=started, harness_version="0.1.0",
                            machine={"cpu_count": 2}, prompt_versions={"greet": "v1"},
                            dataset_hashes={"datasets/x.jsonl": "ab" * 32}, suites={"qa": {"cases": 2}}))
            session.commit()
            session.add(CaseResult(run_id="a" * 32, suite="qa", case_id="c1", inputs={"q": "ünï"},
                                   output={"text": "x"}, scores=[{"name": "exact", "value": 1.0}], passed=True))
            session.add(Baseline(name="main", run_id="a" * 32, note="first"))
            session.commit()
        with Session(engine) as session:
            run = session.get(Run, "a" * 32)
            assert run.prompt_versions == {"greet": "v1"}
            assert run.suites == {"qa": {"cases": 2}}
            assert run.started_at.replace(tzinfo=UTC) == started
            case = session.exec(select(CaseResult)).one()
            assert case.id is not None and case.inputs == {"q": "ünï"}
            assert case.scores == [{"name": "exact", "value": 1.0}] and case.passed is True
            assert session.get(Baseline, "main").run_id == "a" * 32
    finally:
        engine.dispose()


def test_prompt_version_pairs_are_unique(db_url):
    engine = open_database(db_url)
    try:
        with Session(engine) as session:
            session.add(PromptVersion(name="greet", version="v1"))
            session.commit()
            session.add(PromptVersion(name="greet", version="v1"))
            with pytest.raises(sa.exc.IntegrityError):
                session.commit()
    finally:
        engine.dispose()
