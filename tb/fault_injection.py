"""Faults on purpose, to test the regression machinery itself (tests/test_regression.py):
a wrong expected value, a simulation that never finishes in simulated time, a testbench that
never returns control to the simulator, and a crashing simulator. Chosen by $LPU_FAULT."""

import os
import signal
import time

import cocotb
from cocotb.triggers import ClockCycles, Timer

from tb.common import TB, record_stats

FAULT = os.environ.get("LPU_FAULT", "fail")


@cocotb.test(timeout_time=50, timeout_unit="us")
async def test_fault(dut):
    TB(dut)
    await ClockCycles(dut.clk, 10)
    record_stats("test_fault", 10)
    if FAULT == "fail":
        got, expected = 2, 1
        assert got == expected, f"deliberately wrong model: got {got}, model expects {expected}"
    elif FAULT == "hang_sim":
        await Timer(1, unit="sec")           # the simulated-time watchdog fires first
    elif FAULT == "hang_wall":
        while True:                          # Python never yields: only the wall clock helps
            time.sleep(0.5)
    elif FAULT == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
