"""Simulation-throughput benchmark testbench (``make bench``), driven by ``lpu/tools/bench.py``.

$LPU_BENCH_JOB: a pickled job (a compiled run, repeats, result regions).
$LPU_BENCH_MODE: ``framework`` (load through the host port, then start and wait for done with
no Python per cycle: how ``make sim`` runs programs) or ``naive`` (Python awaits every clock
edge and reads the status, as a simple cocotb driver would).
Writes the measured run phase to $LPU_BENCH_OUT.
"""

import os
import pickle
import time

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from lpu.contract.hostport import load_run
from tb.common import CLOCK_NS
from tb.host import HostDriver


@cocotb.test(timeout_time=10_000_000, timeout_unit="us")
async def bench(dut):
    job = pickle.loads(open(os.environ["LPU_BENCH_JOB"], "rb").read())
    mode = os.environ["LPU_BENCH_MODE"]
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    t0 = time.perf_counter()
    await load_run(host, job["run"])
    await host.write_program(job["run"].program)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(job["repeats"]):
        await host.start_program()
        if mode == "framework":
            # static timing: the model predicts the cycle count, so the simulator runs the
            # whole program without waking Python; done is checked once at the end
            program_cycles = job["cycles"] - 1          # job["cycles"] counts the start cycle
            await Timer((program_cycles - 1) * CLOCK_NS + CLOCK_NS // 2, unit="ns")  # mid-cycle
            await RisingEdge(dut.clk)
            await ReadOnly()
            assert int(dut.host__done.value) and not int(dut.host__busy.value), (
                f"program not done after the {program_cycles} cycles the model predicts")
            await Timer(1, unit="ns")
        elif mode == "edge":
            await RisingEdge(dut.host__done)
        else:
            while True:
                await RisingEdge(dut.clk)
                await ReadOnly()
                if int(dut.host__done.value):
                    break
            await Timer(1, unit="ns")      # leave the read-only phase within the same cycle
    seconds = time.perf_counter() - t0
    await RisingEdge(dut.clk)
    counters = await host.read_counters()
    read = [((b, a, n), await host.read_sram(b, a, n)) for b, a, n in job["read"]]
    with open(os.environ["LPU_BENCH_OUT"], "wb") as f:
        pickle.dump({"seconds": seconds, "load_seconds": t_load, "counters": counters,
                     "read": read}, f)
