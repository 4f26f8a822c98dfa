"""For every run: the time each test module took (setup, calls and teardown summed), slowest first, at the
end of the summary, so a CI log shows where the suite's time goes and which modules to look at first."""

from __future__ import annotations

from collections import defaultdict

import pytest

_module_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _module_seconds[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if len(_module_seconds) < 2:
        return
    terminalreporter.write_sep("=", "time per module")
    for module, seconds in sorted(_module_seconds.items(), key=lambda item: -item[1])[:30]:
        terminalreporter.write_line(f"{seconds:8.1f}s  {module}")
