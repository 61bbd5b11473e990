"""Settings shared by the example suites."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # The plugin starts the sidecar with subprocess.Popen and keeps only its pid, so the Popen object's
    # __del__ warns "subprocess N is still running" while the first case is being set up; the project's
    # `filterwarnings = error` turns that into an error of that case. The sidecar is stopped by pid at the
    # end of the session, so the warning is harmless here.
    config.addinivalue_line("filterwarnings", r"ignore:subprocess \d+ is still running:ResourceWarning")
