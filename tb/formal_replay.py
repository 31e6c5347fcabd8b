"""Replays a formal counterexample (``lpu formal --replay TRACE.json``): the harness's ports
take the solver's values cycle by cycle, from the registers' initial values and without a
reset, as in the proof; ``ok`` low on a cycle means an assertion of the harness fails there."""

import json
import os

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from tb.common import TB, WATCHDOG


@cocotb.test(**WATCHDOG)
async def replay(dut):
    TB(dut)
    trace = json.loads(open(os.environ["LPU_FORMAL_TRACE"]).read())
    first = None
    for cycle, values in enumerate(trace["cycles"]):
        for name, value in values.items():
            if name not in ("clk", "ok") and hasattr(dut, name):
                getattr(dut, name).value = value
        await ReadOnly()
        if first is None and not int(dut.ok.value):
            first = cycle
        await RisingEdge(dut.clk)
    with open("replay.json", "w") as f:
        json.dump({"first_failure": first, "cycles": len(trace["cycles"])}, f)
    assert first is None, (f"assertion fails on cycle {first}, as in the proof "
                           f"(formal said cycle {trace['step']}, {trace['where']})")
