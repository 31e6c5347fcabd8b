"""The ``sim`` back end's testbench: run compiled runs (``lpu.host.runtime``) through the
tile's host port and write back the result regions and counters.

Reads the job from ``$LPU_JOB`` and writes ``$LPU_JOB_OUT`` (pickles exchanged with our own
runtime process only).
"""

import os
import pickle

import cocotb

from lpu.contract.hostport import load_run
from tb.common import load_config, record_stats
from tb.host import HostDriver


@cocotb.test(timeout_time=10_000_000, timeout_unit="us")
async def run_job(dut):
    load_config()
    with open(os.environ["LPU_JOB"], "rb") as f:
        job = pickle.load(f)
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    out = {"runs": []}
    total = 0
    for item in job["runs"]:
        run = item["run"]
        await load_run(host, run)
        counters = await host.run(run.program, monitor=job.get("monitor", False))
        read = [((b, a, n), await host.read_sram(b, a, n)) for b, a, n in item["read"]]
        out["runs"].append({"counters": counters, "read": read,
                            "events": host.last_events if job.get("monitor") else None})
        total += counters["cycles"]
    with open(os.environ["LPU_JOB_OUT"], "wb") as f:
        pickle.dump(out, f)
    record_stats("run_job", total)
