"""How the pytest suites (tests/tools, tests/e2e) share both cores.

make tools and make e2e run pytest with pytest-xdist (-n JOBS --dist
loadgroup). Nothing here changes what a test does; it only decides which
tests must stay together and in which order the workers take them:

- Tests that use a fixture wider than one test (scope module, class or
  package, e.g. test_powercut_vm.py's reference boot) go to one worker as a
  group, so that fixture is set up once, as in a serial run. Every other
  test is its own unit of work.
- Units run longest first (the longest-processing-time rule), so the last
  minutes are not one long test on one core while the other idles. A unit's
  length is the sum of its tests' measured times: the seed
  tests/durations.json committed with the suite, overridden by
  $ABSWITCH_DURATIONS (make sets build/test-results/durations-STAGE.json,
  rewritten at the end of every run). A test with no measurement yet (a new
  one) goes first: a short test early costs little, a long test last costs
  its whole length.

Each test keeps its own tmp_path (per-worker base directory), so disks,
VARS copies and registries (own storage, own port from the kernel) never meet.
"""

import inspect
import json
import os
from pathlib import Path

import pytest

SEED = Path(__file__).with_name("durations.json")
SHARED_SCOPES = ("module", "class", "package")


def _durations_file():
    p = os.environ.get("ABSWITCH_DURATIONS")
    return Path(p) if p else None


def _load_durations():
    out = {}
    for p in (SEED, _durations_file()):
        if p and p.is_file():
            try:
                out.update(json.loads(p.read_text()))
            except (OSError, ValueError):
                pass
    return out


def _parallel(config):
    """True in an xdist worker of a --dist loadgroup run (xdist tells workers so)."""
    return hasattr(config, "workerinput") and bool(config.getvalue("loadgroup"))


def _ours(fd, root):
    """A fixture defined in this tree (not pytest's own or a plugin's)."""
    try:
        return root in Path(inspect.getsourcefile(fd.func)).resolve().parents
    except TypeError:
        return False


def _group_of(item):
    """The xdist group of a test that shares a wider-scoped fixture: its module."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    root = Path(str(item.config.rootpath)).resolve()
    for defs in info.name2fixturedefs.values():
        for fd in defs:
            if fd.scope in SHARED_SCOPES and _ours(fd, root):
                return item.nodeid.split("::")[0]
    return None


@pytest.hookimpl(tryfirst=True)   # before xdist's hook, which turns the marks into groups
def pytest_collection_modifyitems(session, config, items):
    if not _parallel(config):
        return
    units = {}
    for item in items:
        group = _group_of(item)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
        mark = item.get_closest_marker("xdist_group")
        key = (mark.args[0] if mark.args else mark.kwargs.get("name", "default")) if mark else item.nodeid
        units.setdefault(key, []).append(item)
    known = _load_durations()

    def length(unit):
        times = [known.get(i.nodeid) for i in unit]
        return float("inf") if None in times else sum(times)

    # Stable: equal lengths keep the collection order. Every worker sorts the
    # same collection with the same file, so they agree (xdist checks).
    order = sorted(units.values(), key=length, reverse=True)
    items[:] = [i for unit in order for i in unit]


# ---- measuring: in the controller (or a serial run), after every test ----------

_measured = {}


_worker = False


def pytest_configure(config):
    global _worker
    _worker = hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    if _worker:
        return
    # xdist names a grouped test "NODEID@GROUP"; the terminal and the JUnit
    # XML (hooks after this one, in the controller) get the test's own name back.
    at = report.nodeid.rfind("@")
    if at > report.nodeid.rfind("]"):
        report.nodeid = report.nodeid[:at]
    _measured[report.nodeid] = _measured.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    p = _durations_file()
    if p is None or _worker or not _measured:
        return
    data = {}
    if p.is_file():
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            data = {}
    data.update({k: round(v, 2) for k, v in _measured.items()})
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")
    tmp.replace(p)
