"""What every testbench shares: configuration, seeds, clock and reset, the watchdog, the
stats the regression reports, and packing of vectors into Verilog buses."""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, ClockCycles

from lpu.contract.bits import pack, unpack
from lpu.contract.config import LpuConfig

__all__ = ["load_config", "rng_for", "TB", "pack", "unpack", "record_stats", "WATCHDOG"]

# Simulated-time watchdog for every test: a hang fails the test with cocotb's timeout
# message instead of spinning until the wall-clock timeout kills the process.
WATCHDOG = dict(timeout_time=int(os.environ.get("LPU_WATCHDOG_US", "20000")), timeout_unit="us")

CLOCK_NS = 10


def load_config():
    return LpuConfig(**json.loads(os.environ["LPU_CONFIG_JSON"]))


def rng_for(name):
    """A NumPy generator seeded from cocotb's seed and the test's name, so each test's
    stimulus is reproducible on its own."""
    seed = int(os.environ.get("COCOTB_RANDOM_SEED", "0"))
    salt = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    cocotb.log.info(f"{name}: seed {seed} (rerun: make sim TEST={name} SEED={seed} WAVES=1)")
    return np.random.default_rng([seed, salt])


def record_stats(test, cycles, **extra):
    """Record a test's figures for the regression's summary, and the coverage so far."""
    from tb.coverage import export
    export()
    path = os.environ.get("LPU_STATS_FILE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, "cycles": int(cycles), **extra}) + "\n")


class TB:
    """Clock, reset and a cycle counter for a design with ``clk`` and ``rst``."""

    def __init__(self, dut):
        self.dut = dut
        self.config = load_config()
        self.cycle = 0
        from tb.coverage import declare
        declare(self.config)        # every run's coverage file declares every cover point
        # The clock: cocotb's, in C++ ("gpi", default) or Python ("py"); or "verilog": the
        # design's wrapper toggles clk itself (lpu.tools.simulation.clocked_wrapper)
        impl = os.environ.get("LPU_CLOCK_IMPL", "gpi")
        if impl != "verilog":
            Clock(dut.clk, CLOCK_NS, unit="ns", impl=impl).start()

    async def reset(self, inputs=()):
        for sig in inputs:
            sig.value = 0
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        self.cycle = 0
