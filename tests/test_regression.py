"""The regression machinery: sharding, JUnit, and failures that are reported with the seed,
the waves and a rerun command, including hangs and crashes, leaving no process behind."""

import xml.etree.ElementTree as ET

import pytest

from lpu.contract.config import PRESETS
from lpu.tools import regression, simulation
from lpu.tools.regression import Job, merge_junit, plan


def test_plan_matrix_and_shards():
    full = plan(seeds=3)
    chips = len(regression.CHIP_PRESETS) * len(regression.CHIP_TILES)
    assert len(full) == ((len(simulation.TESTBENCHES) - 1) * len(PRESETS) + chips) * 3
    shards = [plan(seeds=3, shard=f"{i}/4") for i in range(1, 5)]
    names = [j.name for s in shards for j in s]
    assert sorted(names) == sorted(j.name for j in full)        # union is everything
    assert len(names) == len(set(names))                          # and disjoint


def test_plan_filters():
    jobs = plan(configs="tiny", test="test_strides", seed=7)
    assert [(j.testbench, j.preset, j.seed, j.testcase) for j in jobs] == [("sram", "tiny", 7, "test_strides")]
    assert {j.testbench for j in plan(test="mxm")} == {"mxm"}
    icarus = plan(sim="icarus")
    assert {j.preset for j in icarus if j.testbench != "chip"} == set(regression.ICARUS_PRESETS)
    assert {j.preset.split("*")[0] for j in icarus if j.testbench == "chip"} <= \
        set(regression.ICARUS_PRESETS)
    assert {j.preset for j in plan(test="chip", seed=1)} == {
        f"{p}*{n}" for p in regression.CHIP_PRESETS for n in regression.CHIP_TILES}


@pytest.mark.parametrize("kw,message", [
    (dict(test="nope"), "TEST=nope matches no testbench"),
    (dict(shard="3/2"), "SHARD=3/2: must be i/n with 1 <= i <= n"),
    (dict(seeds=0), "SEEDS=0: must be >= 1"),
])
def test_plan_wrong(kw, message):
    with pytest.raises(ValueError, match=message):
        plan(**kw)


def test_merge_junit(tmp_path):
    for i in (1, 2):
        (tmp_path / f"r{i}.xml").write_text(
            f'<testsuites><testsuite name="s{i}"><testcase name="t{i}" classname="c"/>'
            f'</testsuite></testsuites>')
    n = merge_junit([tmp_path / "r1.xml", tmp_path / "r2.xml"], tmp_path / "all.xml")
    assert n == 2
    assert [c.get("name") for c in ET.parse(tmp_path / "all.xml").getroot().iter("testcase")] == ["t1", "t2"]


@pytest.fixture
def fault_bench(monkeypatch):
    monkeypatch.setitem(simulation.DESIGNS, "fault", simulation.DESIGNS["sram"])
    monkeypatch.setitem(simulation.TESTBENCHES, "fault", "tb.fault_injection")


def _processes_in(folder):
    """PIDs of processes whose working directory is inside ``folder``."""
    import os
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd.startswith(str(folder)):
            pids.append(int(pid))
    return pids


@pytest.mark.parametrize("fault,message", [
    ("fail", "deliberately wrong model: got 2, model expects 1"),
    ("hang_sim", "simulated-time watchdog expired"),
    ("hang_wall", "wall-clock timeout: simulation still running after 20 s, killed"),
    ("crash", "simulator exited with code"),
])
def test_failures_are_reported(fault_bench, monkeypatch, tmp_path, capsys, fault, message):
    monkeypatch.setenv("LPU_FAULT", fault)
    monkeypatch.setattr(regression, "BUILD", tmp_path / "build")   # results; builds are shared
    failed = regression.run_regression([Job("fault", "tiny", 4242)], timeout=20)
    out = capsys.readouterr().out
    assert failed == 1
    assert "FAIL  fault" in out
    assert message in out, out
    assert "seed:   4242" in out
    assert "rerun:  make sim TEST=fault CONFIG=tiny SEED=4242 WAVES=1" in out
    assert "waves:  " in out and (fault in ("hang_wall", "crash") or "dump." in out), out
    assert "TOTAL: 1 jobs, 0 passed, 1 failed" in out
    root = ET.parse(tmp_path / "build" / "sim" / "results.xml").getroot()
    assert root.find(".//failure") is not None
    assert _processes_in(tmp_path) == [], "a simulator process was left behind"
