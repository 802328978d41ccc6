"""conftest.py -- pytest fixtures for the integration scenarios.

`env` gives each test its own harness.Env (private temp dir, free loopback ports) and
tears down every process and thread it started, pass or fail; on failure it prints the
tail of each agent's stderr so the report shows what the agent said. SA_KEEP_TMP=1 keeps
the temp dir of a failed test.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _require_binaries():
    d = os.environ.get("SA_BUILD_DIR")
    if not d:
        pytest.fail("SA_BUILD_DIR is not set: point it at the CMake build dir", pytrace=False)
    for b in (harness.agent_bin(), harness.ctl_bin()):
        if not os.access(b, os.X_OK):
            pytest.fail("missing binary %s (build first)" % b, pytrace=False)


@pytest.fixture
def env(request):
    _require_binaries()
    e = harness.Env()
    yield e
    failed = any(getattr(request.node, "rep_" + w, None) is not None
                 and getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed:
        for a in e.agents():
            print("--- %s (pid %s) config %s ---" % (a.label, a.proc.pid if a.proc else "-",
                                                      a.conf_path))
            print(a.config_text())
            print("--- %s stderr (tail) ---" % a.label)
            print(a.log_tail(120))
        if os.environ.get("SA_KEEP_TMP"):
            print("kept temp dir %s" % e.dir)
    e.cleanup(failed=failed)
