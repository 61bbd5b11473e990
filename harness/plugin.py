"""Tollgate's pytest plugin (entry point `pytest11`): wiring only; the work lives in the modules it names.

A test becomes an LLM regression case with markers:

    @pytest.mark.dataset("datasets/booking_requests.jsonl")
    @pytest.mark.prompt("booking_extract")
    @pytest.mark.tollgate_suite("booking_extraction", max_drop=0.05)
    def test_booking(case, result, score):
        score(scorers.json_schema(SCHEMA), scorers.field_match(case.expected))

The plugin is inert until used: in a run that collects no Tollgate marker, requests no Tollgate fixture and is
given no `--tollgate-*` option, it sets no environment variable, imports nothing beyond pytest and its own small
modules, starts no sidecar and opens no database. (An ini value alone, such as `tollgate_baseline` in a project's
config, does not count as use: the repository configures its suites that way and its unit tests must stay inert.)
"""

from __future__ import annotations

import os
import uuid
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pytest

from core.errors import TollgateError
from core.offline import apply_offline_env
from harness import fixtures
from harness.keys import CASE_STATE, MARKERS, PLUGIN
from harness.options import add_options, option_dests, read_options

if TYPE_CHECKING:
    from core.settings import Settings
    from harness.judges.session import SessionJudges
    from harness.recorder import Recorder
    from harness.session import TestSession
    from harness.verdict import GateVerdict

CASE_PROPERTY = "tollgate_case"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.pluginmanager.register(fixtures, "tollgate-fixtures")
    plugin = TollgatePlugin(config)
    config.stash[PLUGIN] = plugin
    config.pluginmanager.register(plugin, "tollgate-session")
    if options_given(config):
        plugin.activate()


def options_given(config: pytest.Config) -> bool:
    """A `--tollgate-*` option on the command line (or in addopts) says the run means to use Tollgate."""
    return any(config.getoption(dest) is not None for dest in option_dests()) or bool(
        config.getoption("tollgate_no_gate"))


class TollgatePlugin:
    """Per-session hooks. Lazy: settings, the harness modules, the sidecar and the database are loaded only
    when a collected test uses a Tollgate marker, so a run without any costs next to nothing."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.options = read_options(config)
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        self.session_id = (workerinput or {}).get("tollgate_session") or uuid.uuid4().hex
        # Reports are recorded where they arrive: this process without xdist, the controller with it.
        self._records_reports = workerinput is None
        self._recorder: Recorder | None = None
        self._tests_started = False
        self._datasets: dict[Any, tuple[str, str]] = {}
        self.active = False
        self.verdict: GateVerdict | None = None  # set when a recorded run finishes

    def activate(self) -> None:
        """The run uses Tollgate: apply the quiet/offline environment before any library it loads is imported.
        Called on the first marker, fixture or option; until then the process's environment is left alone."""
        if not self.active:
            self.active = True
            apply_offline_env()

    @cached_property
    def settings(self) -> Settings:
        self.activate()
        from core.settings import load_settings

        try:
            return load_settings(self.options.config_file)
        except TollgateError as exc:
            raise pytest.UsageError(f"tollgate: {exc}") from exc

    @cached_property
    def tests(self) -> TestSession:
        self.activate()
        from harness.session import TestSession

        self._tests_started = True
        session = TestSession(self.config, self.options, self.settings, self.session_id)
        self.judges.bind(session)
        return session

    @cached_property
    def judges(self) -> SessionJudges:
        """Judge scorers' runtime (built on first use) and the judge agreement gate."""
        from harness.judges.session import SessionJudges

        return SessionJudges()

    @property
    def recorder(self) -> Recorder | None:
        """The recorder, created with the first case row (never in an xdist worker)."""
        return self._recorder

    def _ensure_recorder(self) -> Recorder:
        if self._recorder is None:
            from harness.recorder import Recorder

            self._recorder = Recorder(self.options, self.settings, self.config.rootpath)
        return self._recorder

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["tollgate_session"] = self.session_id
        node.workerinput["tollgate_owner_pid"] = os.getpid()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        definition = metafunc.definition
        if not any(definition.get_closest_marker(name) for name in ("dataset", "prompt", "tollgate_suite")):
            return
        self.activate()
        from harness.suite import dataset_cases, suite_spec

        marker = definition.get_closest_marker("dataset")
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
        candidates = [item for item in items if item.get_closest_marker("dataset") or item.get_closest_marker("prompt")]
        if not candidates:
            return
        self.activate()
        from harness.cases import CaseState
        from harness.suite import prompt_spec, suite_spec

        for item in candidates:
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
                from harness.cases import score_summary

                item.user_properties.append(("tollgate.scores", score_summary(state.scores)))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self._records_reports or not report.user_properties:
            return
        for index, (name, value) in enumerate(report.user_properties):
            if name == CASE_PROPERTY:
                # Taken out so JUnit XML keeps only the compact tollgate.* properties.
                del report.user_properties[index]
                row = dict(value)  # type: ignore[call-overload]  # a row dict
                self.judges.agreement.observe(row)
                self._ensure_recorder().add(row)
                break

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._tests_started:
            self.tests.close()
            self.judges.close()
        if not self._records_reports or (self._recorder is None and not self._tests_started):
            return
        from harness.sidecar_process import stop_shared_sidecar

        run_dir = self.settings.data_dir / "run"
        stop_shared_sidecar(run_dir if run_dir.is_absolute() else self.config.rootpath / run_dir, self.session_id)
        if self.recorder is None or self.recorder.rows_seen == 0:
            return
        try:
            status = self.recorder.finish(int(exitstatus))
        except TollgateError as exc:
            self.recorder.errors.append(str(exc))
            status = int(exitstatus) or int(pytest.ExitCode.INTERNAL_ERROR)
        minimum = self.options.min_judge_agreement
        self.recorder.gate_failures += self.judges.agreement.failures(
            self.settings.judges.min_agreement if minimum is None else minimum)
        if self.recorder.gate_failures and self.options.gate and status == 0:
            status = 1
        session.exitstatus = status
        report_path = self.options.report or str(self.settings.data_dir / "reports" / "last.json")
        path = self.config.rootpath / report_path
        self.recorder.write_report(path)
        self._junit_properties()
        from harness.verdict import gate_verdict

        self.verdict = gate_verdict(self.recorder, self.options)
        self._write_markdown()

    def _write_markdown(self) -> None:
        if self.recorder is None or self.verdict is None or not (self.options.markdown or self.options.step_summary):
            return
        from harness.markdown import render_markdown, write_markdown

        judges = self.judges.counts if "judges" in self.__dict__ else None
        text = render_markdown(self.recorder, self.options, self.verdict, judges)
        try:
            write_markdown(text, self.options, self.config.rootpath)
        except OSError as exc:  # a summary that cannot be written is reported, never a traceback
            self.recorder.errors.append(f"markdown summary not written: {exc}")

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
        judges = self.judges.summary_line() if "judges" in self.__dict__ else None
        if judges:
            terminalreporter.write_line(judges)
        if self.recorder is None or self.recorder.rows_seen == 0:
            return
        from harness.report import write_summary

        write_summary(terminalreporter, self.recorder, self.options)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # pytest writes its "N passed in 1.2s" line at the end of its own pytest_sessionfinish, after the terminal
        # summary hooks: the gate's line goes out here, after it, as the session's last line.
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if self.verdict is None or terminal is None:
            return
        from harness.report import write_verdict

        write_verdict(terminal, self.verdict)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "test failed"
