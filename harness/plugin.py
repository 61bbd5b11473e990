"""Tollgate's pytest plugin (entry point `pytest11`): wiring only; the work lives in the modules it names.

A test becomes an LLM regression case with markers:

    @pytest.mark.dataset("datasets/booking_requests.jsonl")
    @pytest.mark.prompt("booking_extract")
    @pytest.mark.tollgate_suite("booking_extraction", max_drop=0.05)
    def test_booking(case, result, score):
        score(scorers.json_schema(SCHEMA), scorers.field_match(case.expected))

The plugin is inert for tests that use none of this: it starts no sidecar and opens no database.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from core.errors import TollgateError
from core.offline import apply_offline_env
from core.settings import load_settings
from harness import fixtures
from harness.cases import CaseState, score_summary
from harness.options import add_options, read_options
from harness.recorder import Recorder
from harness.session import CASE_STATE, TestSession
from harness.sidecar_process import stop_shared_sidecar
from harness.suite import MARKERS, dataset_cases, prompt_spec, suite_spec

CASE_PROPERTY = "tollgate_case"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    apply_offline_env()
    config.pluginmanager.register(fixtures, "tollgate-fixtures")
    config.pluginmanager.register(TollgatePlugin(config), "tollgate-session")


class TollgatePlugin:
    """Per-session hooks. Lazy: nothing is started until a test asks for a model answer."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.options = read_options(config)
        try:
            self.settings = load_settings(self.options.config_file)
        except TollgateError as exc:
            raise pytest.UsageError(f"tollgate: {exc}") from exc
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        self.session_id = (workerinput or {}).get("tollgate_session") or uuid.uuid4().hex
        self.tests = TestSession(config, self.options, self.settings, self.session_id)
        config.stash[fixtures.SESSION] = self.tests
        self._datasets: dict[Any, tuple[str, str]] = {}
        # Reports are recorded where they arrive: this process without xdist, the controller with it.
        self.recorder = None if workerinput is not None else Recorder(self.options, self.settings, config.rootpath)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["tollgate_session"] = self.session_id

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        marker = metafunc.definition.get_closest_marker("dataset")
        if marker is not None and "case" in metafunc.fixturenames:
            try:
                dataset, cases = dataset_cases(marker, metafunc.config.rootpath)
            except TollgateError as exc:
                pytest.fail(str(exc), pytrace=False)
            metafunc.parametrize("case", cases, ids=[case.id for case in cases])
            self._datasets[metafunc.function] = (str(marker.args[0] if marker.args else ""), dataset.sha256)
        repeat = suite_spec(metafunc.definition).repeat or self.options.repeat
        if repeat > 1 and "tollgate_repeat" in metafunc.fixturenames:
            metafunc.parametrize("tollgate_repeat", range(repeat), ids=[f"r{i}" for i in range(repeat)])

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            callspec = getattr(item, "callspec", None)
            params = callspec.params if callspec is not None else {}
            prompt = prompt_spec(item)
            if "case" not in params and prompt is None:
                continue
            dataset = self._datasets.get(getattr(item, "function", None))
            item.stash[CASE_STATE] = CaseState(
                suite=suite_spec(item),
                case=params.get("case"),
                repeat=int(params.get("tollgate_repeat", 0)),
                prompt=prompt,
                dataset_path=dataset[0] if dataset else None,
                dataset_sha256=dataset[1] if dataset else None,
            )
        self.tests.set_items(items)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        state = item.stash.get(CASE_STATE, None)
        final = report.when == "call" or (report.when == "setup" and report.outcome != "passed")
        if state is not None and final:
            if report.failed and state.error is None and state.result is not None and state.result.error is None:
                state.error = _one_line(report.longreprtext)
            row = state.finish()
            # The full row rides on this report to the recording process; the compact properties go on the
            # item, so the teardown report (the one JUnit XML reads) carries them.
            report.user_properties.append((CASE_PROPERTY, row))
            item.user_properties.append(("tollgate.suite", state.suite.name))
            item.user_properties.append(("tollgate.passed", str(row["passed"])))
            if state.scores:
                item.user_properties.append(("tollgate.scores", score_summary(state.scores)))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.recorder is None:
            return
        for index, (name, value) in enumerate(report.user_properties):
            if name == CASE_PROPERTY:
                # Taken out so JUnit XML keeps only the compact tollgate.* properties.
                del report.user_properties[index]
                self.recorder.add(dict(value))  # type: ignore[call-overload]  # a row dict, typed object by pytest
                break

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.tests.close()
        if self.recorder is None:
            return
        run_dir = self.settings.data_dir / "run"
        stop_shared_sidecar(run_dir if run_dir.is_absolute() else self.config.rootpath / run_dir, self.session_id)
        if self.recorder.rows_seen == 0:
            return
        try:
            status = self.recorder.finish(int(exitstatus))
        except TollgateError as exc:
            self.recorder.errors.append(str(exc))
            status = int(exitstatus) or int(pytest.ExitCode.INTERNAL_ERROR)
        session.exitstatus = status
        report_path = self.options.report or str(self.settings.data_dir / "reports" / "last.json")
        path = self.config.rootpath / report_path
        self.recorder.write_report(path)
        self._junit_properties()

    def _junit_properties(self) -> None:
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is None or self.recorder is None:
            return
        xml.add_global_property("tollgate.run_id", self.recorder.run_id or "")
        comparison = self.recorder.comparison
        for name, summary in self.recorder.report()["suites"].items():
            xml.add_global_property(f"tollgate.{name}.score", f"{summary.get('score')}")
        if comparison is not None:
            for row in comparison.rows:
                xml.add_global_property(f"tollgate.{row.suite}.verdict", row.verdict)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.recorder is None or self.recorder.rows_seen == 0:
            return
        from harness.report import write_summary

        write_summary(terminalreporter, self.recorder, self.options)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "test failed"
