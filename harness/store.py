"""The run store: write runs and case results in batches, load them back, name baselines, export and import.

A run can be referred to by its id (or a unique prefix of it), its label, a baseline name (`main`),
`latest`, `latest-on-branch` / `latest-on-branch:<branch>`, or the path of an exported `.json` file. A file is
read without touching the database, so a baseline committed to the repository works on a fresh machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pydantic
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import core
from core.tables import Baseline, BaselinePublic, CaseResult, PromptVersion, Run, RunPublic, utc_now
from core.tables.runs import RUN_FINISHED
from harness.errors import HarnessError
from harness.provenance import current_branch

EXPORT_FORMAT = "tollgate.run"
EXPORT_VERSION = 1
LATEST = "latest"
LATEST_ON_BRANCH = "latest-on-branch"
_MIN_PREFIX = 4
_CASE_TABLE = CaseResult.__table__  # type: ignore[attr-defined]
_RUN_COLUMNS = frozenset(RunPublic.model_fields)
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class _OrjsonJSON(sa.types.TypeDecorator[Any]):
    """A JSON column bound through orjson: about 3x faster than `json.dumps` when writing case results.

    The value goes to the driver as text; PostgreSQL's dialect still renders the `::JSON` cast of `impl`.
    """

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        def process(value: Any) -> str | None:
            return None if value is None else orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()

        return process


# The case_results columns for bulk inserts (the id is left to the database).
_CASE_INSERT = sa.insert(
    sa.table(
        _CASE_TABLE.name,
        *(
            sa.column(c.name, _OrjsonJSON() if isinstance(c.type, sa.JSON) else c.type)
            for c in _CASE_TABLE.columns
            if c.name != "id"
        ),
    )
)


@dataclass(slots=True)
class CaseRecord:
    """One case x one repeat, as written to and read from the store.

    `output` is `LLMResult.to_dict()` and `scores` a list of `Score.to_dict()`; `add_case_results` also accepts
    the objects themselves and fills latency, tokens, cost and `replayed` from the output when not given.
    """

    suite: str
    case_id: str
    repeat: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)
    passed: bool | None = None
    error: str | None = None
    latency_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    replayed: bool = False

    def score_value(self, name: str) -> float | None:
        """The value of the score called `name`, or None when absent or unscored."""
        for score in self.scores:
            if score.get("name") == name:
                value = score.get("value")
                return None if value is None else float(value)
        return None


_CASE_FIELDS = tuple(f.name for f in dataclasses.fields(CaseRecord))
_FROM_OUTPUT = ("latency_ms", "tokens_in", "tokens_out", "cost_usd")


@dataclass(slots=True)
class RunData:
    """A run's metadata and all its case results, loaded from the database or from an exported file."""

    meta: RunPublic
    cases: list[CaseRecord]
    source: str = "database"

    @property
    def id(self) -> str:
        return self.meta.id

    def describe(self) -> str:
        """A short name for tables and messages: `1a2b3c4d (label)`, plus the file it was read from."""
        name = f"{self.meta.id[:8]} ({self.meta.label})" if self.meta.label else self.meta.id[:8]
        return name if self.source in ("database", "import") else f"{name} from {self.source}"


class RunStore:
    """Runs, case results and baselines in the Tollgate database (already migrated by `open_database`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing -------------------------------------------------------------------------------------------
    def start_run(self, provenance: Mapping[str, Any], **fields: Any) -> str:
        """Insert a `running` run from `collect_provenance()` output plus any run column
        (label, repeat, models, prompt_versions, dataset_hashes, suites). Returns the new run id."""
        values = {**provenance, **fields}
        unknown = sorted(set(values) - _RUN_COLUMNS)
        if unknown:
            raise HarnessError(f"unknown run field(s): {', '.join(unknown)}")
        values.setdefault("id", uuid.uuid4().hex)
        values.setdefault("harness_version", core.__version__)
        run = Run(**values)
        run.started_at = _as_utc(run.started_at)
        with Session(self.engine) as session:
            session.add(run)
            session.commit()
        return str(values["id"])

    def add_case_results(self, run_id: str, rows: Iterable[CaseRecord | Mapping[str, Any]]) -> int:
        """Insert case results in one executemany; returns how many were written."""
        values = [_row_values(run_id, row) for row in rows]
        if values:
            with self.engine.begin() as conn:
                conn.execute(_CASE_INSERT, values)
        return len(values)

    def finish_run(self, run_id: str, *, status: str = RUN_FINISHED, **fields: Any) -> None:
        """Mark the run finished (or `aborted`) and store late facts such as `suites` and `exit_status`.
        `replay` is derived from the stored case results unless given."""
        unknown = sorted(set(fields) - _RUN_COLUMNS)
        if unknown:
            raise HarnessError(f"unknown run field(s): {', '.join(unknown)}")
        with Session(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                raise HarnessError(f"no run with id {run_id!r}")
            if "replay" not in fields:
                replayed = select(CaseResult.id).where(CaseResult.run_id == run_id, col(CaseResult.replayed))
                fields["replay"] = session.exec(replayed.limit(1)).first() is not None
            for key, value in {**fields, "status": status, "finished_at": utc_now()}.items():
                setattr(run, key, value)
            session.add(run)
            session.commit()

    def record_prompt_versions(self, versions: Mapping[str, tuple[str, str | Path | None]]) -> int:
        """Remember the first time each `{name: (version, path)}` was seen; known pairs are left untouched.
        Returns how many pairs were new."""
        rows = [
            {"name": name, "version": version, "path": None if path is None else str(path),
             "content_hash": _file_sha256(path), "first_seen_at": utc_now()}
            for name, (version, path) in versions.items()
        ]
        if not rows:
            return 0
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        table = PromptVersion.__table__  # type: ignore[attr-defined]
        statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["name", "version"])
        statement = statement.returning(table.c.id)  # rowcount is not reliable across drivers here
        with self.engine.begin() as conn:
            return sum(len(conn.execute(statement, row).all()) for row in rows)

    def save_baseline(self, name: str, run_id: str, note: str | None = None) -> BaselinePublic:
        """Point the baseline `name` at `run_id` (creating or moving it)."""
        if not name.strip() or name.startswith(LATEST) or name.endswith(".json"):
            raise HarnessError(f"{name!r} cannot name a baseline (reserved or empty)")
        with Session(self.engine) as session:
            if session.get(Run, run_id) is None:
                raise HarnessError(f"no run with id {run_id!r}")
            baseline = session.get(Baseline, name) or Baseline(name=name, run_id=run_id)
            baseline.run_id, baseline.note, baseline.created_at = run_id, note, utc_now()
            session.add(baseline)
            session.commit()
            session.refresh(baseline)
            return _public_baseline(baseline)

    # -- reading -------------------------------------------------------------------------------------------
    def list_baselines(self) -> list[BaselinePublic]:
        """Every baseline, by name."""
        with Session(self.engine) as session:
            return [_public_baseline(b) for b in session.exec(select(Baseline).order_by(col(Baseline.name)))]

    def load_run(self, ref: str, *, exclude: str | None = None) -> RunData:
        """The run `ref` names (see the module docstring); a `.json` path is read from the file."""
        if is_file_ref(ref):
            return load_run_file(ref)
        return self._load(self.resolve(ref, exclude=exclude))

    def resolve(self, ref: str, *, exclude: str | None = None) -> str:
        """The id of the run `ref` names in the database. `exclude` (the current run) is never returned by
        `latest` or `latest-on-branch`."""
        ref = ref.strip()
        if ref == LATEST or ref == LATEST_ON_BRANCH or ref.startswith(LATEST_ON_BRANCH + ":"):
            return self._latest(ref, exclude)
        with Session(self.engine) as session:
            if ref and session.get(Run, ref) is not None:
                return ref
            baseline = session.get(Baseline, ref) if ref else None
            if baseline is not None:
                return baseline.run_id
            by_label = select(Run.id).where(Run.label == ref).order_by(col(Run.started_at).desc())
            labelled = session.exec(by_label.limit(1)).first() if ref else None
            if labelled is not None:
                return labelled
            if len(ref) >= _MIN_PREFIX and all(c in "0123456789abcdef" for c in ref):
                matches = session.exec(select(Run.id).where(col(Run.id).startswith(ref)).limit(3)).all()
                if len(matches) == 1:
                    return matches[0]
                if matches:
                    raise HarnessError(f"run id prefix {ref!r} is ambiguous ({', '.join(matches)}, ...)")
            names = ", ".join(session.exec(select(Baseline.name).order_by(col(Baseline.name)))) or "none saved"
        raise HarnessError(f"no run or baseline named {ref!r} (baselines: {names})")

    def _latest(self, ref: str, exclude: str | None) -> str:
        query = select(Run.id).where(Run.status == RUN_FINISHED)
        where = "finished run"
        if ref.startswith(LATEST_ON_BRANCH):
            branch = ref.partition(":")[2] or current_branch()
            if not branch:
                raise HarnessError("cannot tell the current git branch; use latest-on-branch:<branch>")
            query, where = query.where(Run.git_branch == branch), f"finished run on branch {branch!r}"
        if exclude is not None:
            query = query.where(Run.id != exclude)
        with Session(self.engine) as session:
            found = session.exec(query.order_by(col(Run.started_at).desc(), col(Run.id)).limit(1)).first()
        if found is None:
            raise HarnessError(f"{ref}: no {where} in the database yet")
        return found

    def get_run(self, run_id: str) -> RunPublic:
        """A run's metadata alone (no case results), by exact id."""
        with Session(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                raise HarnessError(f"no run with id {run_id!r}")
            meta = RunPublic.model_validate(run.model_dump())
        meta.started_at = _as_utc(meta.started_at)
        meta.finished_at = _as_utc(meta.finished_at) if meta.finished_at else None
        return meta

    def _load(self, run_id: str) -> RunData:
        meta = self.get_run(run_id)
        columns = [_CASE_TABLE.c[name] for name in _CASE_FIELDS]
        query = sa.select(*columns).where(_CASE_TABLE.c.run_id == run_id).order_by(_CASE_TABLE.c.id)
        with self.engine.connect() as conn:
            cases = [CaseRecord(*row) for row in conn.execute(query)]
        return RunData(meta=meta, cases=cases)

    # -- export / import -----------------------------------------------------------------------------------
    def export_run(self, run_id: str, *, include_raw: bool = True, baseline: str | None = None) -> dict[str, Any]:
        """A JSON-ready dict holding the run and all its case results (`import_run` reads it back).
        `include_raw=False` drops each output's raw response body, which keeps committed files small."""
        data = self._load(self.resolve(run_id))
        return run_to_dict(data, include_raw=include_raw, baseline=baseline)

    def import_run(self, data: Mapping[str, Any]) -> str:
        """Insert an exported run, keeping its id. Importing a run that is already present changes nothing."""
        run = run_from_dict(data, source="import")
        with Session(self.engine) as session:
            if session.get(Run, run.id) is not None:
                return run.id
            session.add(Run(**run.meta.model_dump()))
            session.commit()
        self.add_case_results(run.id, run.cases)
        return run.id

    def export_run_file(self, run_id: str, path: str | Path, *, include_raw: bool = True,
                        baseline: str | None = None) -> Path:
        """Write `export_run` to `path` as indented JSON with sorted keys (stable diffs when committed)."""
        target = Path(path)
        data = self.export_run(run_id, include_raw=include_raw, baseline=baseline)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        except OSError as exc:
            raise HarnessError(f"{target}: cannot write ({exc.strerror})") from exc
        return target

    def import_run_file(self, path: str | Path) -> str:
        """Import a file written by `export_run_file`; returns the run id."""
        return self.import_run(read_run_file(path))


def is_file_ref(ref: str) -> bool:
    """True when a run reference is the path of an exported run (it ends in `.json`)."""
    return ref.strip().lower().endswith(".json")


def read_run_file(path: str | Path) -> dict[str, Any]:
    """The parsed content of an exported run file, with one-line errors."""
    target = Path(path)
    try:
        data = orjson.loads(target.read_bytes())
    except FileNotFoundError as exc:
        raise HarnessError(f"{target}: run file not found") from exc
    except OSError as exc:
        raise HarnessError(f"{target}: cannot read run file ({exc.strerror})") from exc
    except orjson.JSONDecodeError as exc:
        raise HarnessError(f"{target}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise HarnessError(f"{target}: not an exported tollgate run")
    return data


def load_run_file(path: str | Path) -> RunData:
    """A run read straight from an exported file, without a database."""
    return run_from_dict(read_run_file(path), source=str(path))


def run_to_dict(run: RunData, *, include_raw: bool = True, baseline: str | None = None) -> dict[str, Any]:
    """The export form of a run: `{format, format_version, run, baseline, cases}`."""
    cases = []
    for case in run.cases:
        row = {key: getattr(case, key) for key in _CASE_FIELDS}
        if not include_raw and row["output"] is not None:
            row["output"] = {**row["output"], "raw": None}
        cases.append(row)
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "run": run.meta.model_dump(mode="json"),
        "baseline": baseline,
        "cases": cases,
    }


def run_from_dict(data: Mapping[str, Any], *, source: str) -> RunData:
    """Validate an exported run and turn it back into `RunData`."""
    if data.get("format") != EXPORT_FORMAT:
        raise HarnessError(f"{source}: not an exported tollgate run (format {data.get('format')!r})")
    if data.get("format_version") != EXPORT_VERSION:
        raise HarnessError(f"{source}: unsupported run file version {data.get('format_version')!r}")
    try:
        meta = RunPublic.model_validate(data.get("run"))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise HarnessError(f"{source}: invalid run metadata: {where}: {first['msg']}") from exc
    meta.started_at = _as_utc(meta.started_at)
    cases = []
    for index, row in enumerate(data.get("cases") or []):
        if not isinstance(row, Mapping) or "suite" not in row or "case_id" not in row:
            raise HarnessError(f"{source}: case result #{index} needs 'suite' and 'case_id'")
        cases.append(CaseRecord(**{key: row[key] for key in _CASE_FIELDS if key in row}))
    return RunData(meta=meta, cases=cases, source=source)


def _row_values(run_id: str, row: CaseRecord | Mapping[str, Any]) -> dict[str, Any]:
    """The column values of one case result; LLMResult/Score objects are turned into dicts here."""
    if isinstance(row, CaseRecord):
        values = {key: getattr(row, key) for key in _CASE_FIELDS}
    else:
        values = {key: row.get(key) for key in _CASE_FIELDS}
    output = values["output"]
    if output is not None and not isinstance(output, dict):
        output = values["output"] = output.to_dict()
    values["scores"] = [s if isinstance(s, dict) else s.to_dict() for s in values["scores"] or ()]
    values["inputs"] = values["inputs"] or {}
    values["repeat"] = values["repeat"] or 0
    if output is not None:
        for key in _FROM_OUTPUT:
            if values[key] is None:
                values[key] = output.get(key)
        values["replayed"] = bool(values["replayed"] or output.get("replayed"))
        if values["error"] is None:
            values["error"] = output.get("error")
    values["replayed"] = bool(values["replayed"])
    values["run_id"] = run_id
    return values


def _public_baseline(baseline: Baseline) -> BaselinePublic:
    public = BaselinePublic.model_validate(baseline.model_dump())
    public.created_at = _as_utc(public.created_at)
    return public


def _as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _file_sha256(path: str | Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
