"""`make formal`: every task of lpu.tools.formal proves its properties (and reaches its
covers) on the tiny preset; a deliberately false property fails with a counterexample that
replays, failing on the same cycle, in a cocotb simulation; user errors get one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lpu.contract.config import preset
from lpu.tools.formal import TASKS, Task, check_task, replay

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_proves(name, tmp_path):
    r = check_task(name, TASKS[name], "tiny", tmp_path / name, log=lambda s: None, quick=True)
    assert r["check"]["status"] == "PASS", f"{name}: {r['check']}"
    assert r["cover"]["status"] == "PASS", f"{name}: a cover is unreachable: {r['cover']}"


def test_accumulator_proves_without_read_registers(tmp_path):
    """The read-modify-write and its forwarding at the iCEBreaker's latencies (no register
    after the block RAM: a one-cycle update) as well as at tiny's (two cycles)."""
    assert preset("icebreaker").acc_update_delay != preset("tiny").acc_update_delay
    r = check_task("accumulator", TASKS["accumulator"], "icebreaker", tmp_path / "acc",
                   log=lambda s: None, quick=True)
    assert r["check"]["status"] == "PASS" and r["cover"]["status"] == "PASS", r


def test_false_property_fails_with_a_replayable_counterexample(tmp_path):
    task = Task("formal.broken:NoWrapHarness", "prove", 20, 20, "streams never wrap (false)")
    lines = []
    r = check_task("no_wrap", task, "tiny", tmp_path / "no_wrap", log=lines.append)
    check = r["check"]
    assert check["status"] == "FAIL" and not r["passed"]
    assert check["where"].endswith("formal/broken.py:13"), check
    assert Path(check["waves"]).is_file() and Path(check["waves"]).suffix == ".vcd"
    trace = json.loads(Path(check["trace"]).read_text())
    assert trace["cycles"] and trace["step"] == len(trace["cycles"]) - 1
    assert any("lpu formal --replay" in line for line in lines)
    first, result = replay(check["trace"], log=lambda s: None)
    assert first == check["step"], f"replay fails on cycle {first}, the proof on {check['step']}"
    assert not result.passed


def _lpu(*args):
    return subprocess.run([sys.executable, "-m", "lpu.host.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_cli_user_errors(tmp_path):
    r = _lpu("formal", "--task", "no_such_task")
    assert r.returncode == 2 and "unknown formal task 'no_such_task'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = _lpu("formal", "--replay", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "no counterexample trace" in r.stderr
    r = _lpu("formal", "--config", "huge")
    assert r.returncode == 2 and "Traceback" not in r.stderr
