"""The ``sim`` back end's testbench: run a compiled job (``lpu.host.runtime``) through the tile's
host port and write back the result regions and counters.

Reads the job from ``$LPU_JOB`` and writes ``$LPU_JOB_OUT`` (pickles exchanged with our own
runtime process only).
"""

import os
import pickle

import cocotb

from model.tile import schedule
from lpu.contract.isa import decode
from tb.common import WATCHDOG, load_config, record_stats
from tb.host import HostDriver


@cocotb.test(timeout_time=10_000_000, timeout_unit="us")
async def run_job(dut):
    cfg = load_config()
    job = pickle.loads(open(os.environ["LPU_JOB"], "rb").read())
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    out = {"runs": []}
    total = 0
    for run in job["runs"]:
        for bank, (addr, words) in run["sram"].items():
            await host.write_sram(bank, addr, words)
        for row, packed in run["params"].items():
            await host.write_params_packed(row, packed)
        expected = schedule([decode(w) for w in run["program"]], cfg).cycles
        counters = await host.run(run["program"], max_cycles=2 * expected + 1000)
        read = [((b, a, n), await host.read_sram(b, a, n)) for b, a, n in run["read"]]
        out["runs"].append({"counters": counters, "read": read})
        total += counters["cycles"]
    with open(os.environ["LPU_JOB_OUT"], "wb") as f:
        pickle.dump(out, f)
    record_stats("run_job", total)
