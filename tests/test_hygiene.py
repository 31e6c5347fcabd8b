"""Code hygiene that `make test` enforces: ruff's rule set from pyproject.toml, and every
testbench runnable on its own with plain pytest."""

import os
import subprocess
import sys
from pathlib import Path

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
