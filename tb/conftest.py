"""Run one testbench as any test is run: ``pytest tb/test_tile.py``.

Each ``tb/test_<unit>.py`` becomes one pytest item per preset, ``<unit>[<preset>]``, which
builds (on the same build cache and generated Verilog as ``make sim``) and runs that cocotb
testbench in a simulator process of its own. Options, or the same environment variables as
``make sim``: ``--lpu-config`` / ``CONFIG`` (preset or comma list; default every preset),
``--lpu-seed`` / ``SEED`` (default 1000), ``--lpu-test`` / ``TEST`` (a cocotb test name or
regex), ``--lpu-waves`` / ``WAVES=1``, ``--lpu-sim`` / ``SIM``. A failure prints the
testbench's message, its seed, its log and the ``make sim`` command that reruns it.

``make test`` does not collect these (its ``testpaths`` is ``tests/``): ``tests/test_sim.py``
runs every testbench there.
"""

import os
from pathlib import Path

import pytest

from lpu.contract.config import PRESETS, preset
from lpu.tools.regression import Job
from lpu.tools.simulation import BUILD, TESTBENCHES, run_testbench

HERE = Path(__file__).resolve().parent
MODULES = {module.rsplit(".", 1)[1]: design for design, module in TESTBENCHES.items()}


def pytest_addoption(parser):
    group = parser.getgroup("lpu", "lpu-cosim testbenches (tb/)")
    group.addoption("--lpu-config", default=os.environ.get("CONFIG") or None,
                    help="preset or comma list (default: every preset)")
    group.addoption("--lpu-seed", type=int, default=int(os.environ.get("SEED") or 1000))
    group.addoption("--lpu-test", default=os.environ.get("TEST") or None,
                    help="cocotb test name or regex")
    group.addoption("--lpu-waves", action="store_true",
                    default=os.environ.get("WAVES") in ("1", "yes", "true"))
    group.addoption("--lpu-sim", default=os.environ.get("SIM") or "verilator",
                    choices=["verilator", "icarus"])


def pytest_pycollect_makemodule(module_path, parent):
    if Path(module_path).resolve().parent == HERE and Path(module_path).stem in MODULES:
        return TestbenchFile.from_parent(parent, path=Path(module_path))
    return None


class TestbenchFile(pytest.File):
    def collect(self):
        opt = self.config.getoption
        names = opt("--lpu-config").split(",") if opt("--lpu-config") else list(PRESETS)
        design = MODULES[self.path.stem]
        for name in names:
            yield TestbenchItem.from_parent(self, name=f"{design}[{name}]", design=design,
                                            preset_name=name)


class TestbenchFailure(Exception):
    pass


class TestbenchItem(pytest.Item):
    def __init__(self, *, design, preset_name, **kwargs):
        super().__init__(**kwargs)
        self.design = design
        self.preset_name = preset_name

    def runtest(self):
        opt = self.config.getoption
        seed, sim, test = opt("--lpu-seed"), opt("--lpu-sim"), opt("--lpu-test")
        cfg = preset(self.preset_name)
        job = Job(self.design, self.preset_name, seed, test if test != self.design else None)
        run_dir = BUILD / "sim" / "pytest" / f"{self.design}-{self.preset_name}-seed{seed}"
        res = run_testbench(self.design, cfg, seed=seed, run_dir=run_dir, sim=sim,
                            waves=opt("--lpu-waves"), testcase=job.testcase, log=lambda s: None)
        if not res.passed:
            raise TestbenchFailure(
                f"{job.name}: {res.message}\n  seed:  {seed}\n  log:   {res.log}\n"
                + (f"  waves: {res.waves}\n" if res.waves else "")
                + f"  rerun: {job.rerun(sim)}")
        if res.tests == 0:
            raise TestbenchFailure(f"{job.name}: no cocotb test ran (TEST={test!r} matches none?)")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, TestbenchFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.design} testbench on {self.preset_name}"
