"""The ``sim`` back end of a chip (``lpu run --tiles N``): run chip runs (``lpu.host.chain``)
on ``rtl.chip.LpuChip`` and write back the results (from the tiles holding them), every
tile's counters and, when asked, every tile's events.

Reads the job from ``$LPU_JOB`` and writes ``$LPU_JOB_OUT`` (pickles exchanged with our own
runtime process only).
"""

import os
import pickle

import cocotb

from lpu.contract.isa import Op
from model.tile import schedule
from tb.common import load_config, record_stats
from tb.host import HostDriver, run_chip


@cocotb.test(timeout_time=10_000_000, timeout_unit="us")
async def run_chip_job(dut):
    cfg = load_config()
    with open(os.environ["LPU_JOB"], "rb") as f:
        job = pickle.load(f)
    await HostDriver(dut).start_clock_and_reset()
    port = [HostDriver(dut, tile=k) for k in range(cfg.tiles)]
    out, total = [], 0
    for chain in job["chains"]:
        # a generous bound: every tile's program as if alone, plus every arrival's wait
        bound = sum(schedule([i for i in r.program if i.op != Op.RX], cfg).cycles
                    for r in chain["runs"]) * 2 + 10_000
        counters, events = await run_chip(dut, cfg, chain["runs"], bound,
                                          monitor=job["monitor"])
        read = [((k, b, a, n), await port[k].read_sram(b, a, n)) for k, b, a, n in chain["read"]]
        out.append({"counters": counters, "events": events, "read": read})
        total += max(c["cycles"] for c in counters)
    with open(os.environ["LPU_JOB_OUT"], "wb") as f:
        pickle.dump(out, f)
    record_stats("run_chip_job", total)
