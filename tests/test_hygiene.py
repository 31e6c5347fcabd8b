"""Code hygiene that `make test` enforces: ruff's rule set from pyproject.toml, and every
testbench runnable on its own with plain pytest."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def _pytest_tb(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONFIG", "SEED",
                                                                    "TEST", "WAVES", "SIM"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tb/test_sram.py", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=900)


def test_one_testbench_runs_under_plain_pytest():
    r = _pytest_tb("--lpu-config", "tiny", "--lpu-seed", "3")
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr


def test_plain_pytest_testbench_failure_names_the_rerun():
    r = _pytest_tb("--lpu-config", "tiny", "--lpu-test", "test_no_such_test")
    assert r.returncode == 1, r.stdout
    assert "rerun: make sim TEST=test_no_such_test CONFIG=tiny SEED=1000 WAVES=1" in r.stdout


def test_the_longest_tests_are_named_as_collected():
    """Every name in ``tests/conftest.py``'s ``LONG`` still names a test `make test` runs (a
    renamed or heavy-marked one would silently lose its place at the front), and the order
    starts with the longest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider", "tests"], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    from conftest import LONG, expected_seconds
    named = {nodeid.split("[")[0] for nodeid in ids} | set(ids)
    assert set(LONG) <= named, sorted(set(LONG) - named)
    # one process (no xdist workers): the whole order is longest first
    seconds = [expected_seconds(nodeid) for nodeid in ids]
    assert seconds == sorted(seconds, reverse=True) and seconds[0] > 0, seconds[:10]


def test_the_longest_tests_are_dealt_to_the_workers(monkeypatch):
    """With two workers, each one's slice of the order (worksteal's: the first
    ``n // 2``, then the rest) holds every other of the longest, longest first."""
    import conftest
    monkeypatch.setattr(conftest, "LONG", {"a": 50, "b": 40, "c": 30, "d": 20})
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    items = [SimpleNamespace(nodeid=n) for n in ["x", "d", "c[p]", "b", "a", "y", "z"]]
    conftest.pytest_collection_modifyitems(None, items)
    order = [item.nodeid for item in items]
    assert order[:3] == ["b", "d", "y"] and order[3:] == ["a", "c[p]", "x", "z"], order
