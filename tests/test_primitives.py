"""``rtl.primitives``' falling-edge block RAM reads (an iCE40's), in Amaranth's simulator
against the generic elaboration of the same component: an SRAM bank (read-first reads of the
word being written, through ``read_first_port``) returns the same words on the same cycles,
and the accumulator (its read-modify-write reads on the falling edge and forwards nothing)
the same sums, under seeded random traffic. (The netlists' tests, ``tests/test_netlist.py``,
check the same through Yosys's cell models.) And the sequencer's instruction memory: a
write of instruction 0 with the start is the word the run decodes."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from lpu.contract.config import preset
from rtl.accumulator import AccumulatorMemory
from rtl.primitives import Family
from rtl.sram_bank import SramBank

SEED = 20261130


def _simulate(dut, platform, bench):
    """Run ``bench`` (an async testbench) against ``dut`` elaborated for ``platform``, on a
    1 MHz clock."""
    sim = Simulator(Fragment.get(dut, platform))
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _run(platform, updates, cfg):
    """Drive ``updates`` (one per cycle: None or (addr, accumulate, data)) and read row
    ``cycle % acc_depth`` every cycle; the read port's word late in each cycle (what the
    next rising edge takes: a falling-edge port's own word has changed by then)."""
    dut = AccumulatorMemory(cfg)
    seen = []

    async def bench(ctx):
        for c, u in enumerate(updates + [None] * 8):
            ctx.set(dut.rd_addr, c % cfg.acc_depth)
            ctx.set(dut.i_valid, u is not None)
            if u is not None:
                addr, accumulate, data = u
                ctx.set(dut.i_addr, addr)
                ctx.set(dut.i_accumulate, accumulate)
                for n, v in enumerate(data):
                    ctx.set(dut.i_data[n], int(v))
            await ctx.delay(0.9e-6)             # late in the cycle: after the falling edge
            seen.append([ctx.get(dut.rd_data[n]) for n in range(cfg.lanes)])
            await ctx.tick()

    _simulate(dut, platform, bench)
    return seen


@pytest.mark.parametrize("name", ["icebreaker"])
def test_falling_edge_accumulator_equals_the_generic_one(name):
    cfg = preset(name)
    assert cfg.acc_update_delay == 1        # the iCE40 datapath is the one for one cycle
    rng = np.random.default_rng(SEED)
    updates = []
    for _ in range(400):
        if rng.random() < 0.15:
            updates.append(None)
            continue
        # mostly the same few rows, so updates of one row follow each other closely
        addr = int(rng.integers(0, 3)) if rng.random() < 0.7 else int(rng.integers(0, cfg.acc_depth))
        updates.append((addr, int(rng.random() < 0.8),
                        rng.integers(-(1 << 31), 1 << 31, cfg.lanes)))
    back_to_back = sum(1 for a, b in zip(updates, updates[1:])
                       if a and b and a[0] == b[0] and b[1])
    assert back_to_back > 50, back_to_back
    generic = _run(None, updates, cfg)
    ice40 = _run(Family("ice40"), updates, cfg)
    assert any(any(v) for v in generic)
    for c, (g, i) in enumerate(zip(generic, ice40)):
        assert g == i, f"cycle {c}: iCE40 {i} != generic {g} (seed {SEED})"


def test_falling_edge_bank_reads_first_like_the_generic_one():
    cfg = preset("icebreaker")
    rng = np.random.default_rng(SEED)
    traffic = []
    for _ in range(400):
        addr = int(rng.integers(0, 4))          # few words: reads of the word being written
        traffic.append((int(rng.integers(0, 4)) if rng.random() < 0.5 else addr,
                        rng.random() < 0.6, addr, int(rng.integers(0, 1 << cfg.word_bits)),
                        int(rng.integers(0, 1 << cfg.lanes))))
    assert sum(1 for r, w, a, _d, _m in traffic if w and r == a) > 50

    def run(platform):
        dut = SramBank(cfg)
        seen = []

        async def bench(ctx):
            for rd, we, addr, data, mask in traffic + [(0, False, 0, 0, 0)] * 4:
                ctx.set(dut.rd_addr, rd)
                ctx.set(dut.wr_en, we)
                ctx.set(dut.wr_addr, addr)
                ctx.set(dut.wr_data, data)
                ctx.set(dut.wr_mask, mask)
                await ctx.delay(0.9e-6)         # late in the cycle: after the falling edge
                seen.append(ctx.get(dut.o_data))
                await ctx.tick()

        _simulate(dut, platform, bench)
        return seen

    generic, ice40 = run(None), run(Family("ice40"))
    assert len(set(generic)) > 20
    for c, (g, i) in enumerate(zip(generic, ice40)):
        assert g == i, f"cycle {c}: iCE40 {i:#x} != generic {g:#x} (seed {SEED})"


@pytest.mark.parametrize("name", ["tiny", "icebreaker"])
def test_instruction_written_with_the_start_is_the_one_run(name):
    """The host writes instruction 0 on the cycle it starts the tile (or on the cycle
    before): the run decodes the new word, not the one the instruction memory held (with
    ``read_registers`` the queue's first read is on the run's first cycle, after the write;
    without, the read port is transparent). The old word is HALT, the new one a WAIT of 40
    cycles, so the run takes 40 cycles more with the new word."""
    from lpu.contract.isa import Insn, Op, encode
    from rtl.sequencer import Sequencer
    cfg = preset(name)
    wait = 40

    def run(gap):
        dut = Sequencer(cfg)
        cycles = []

        async def bench(ctx):
            for addr, insn in ((0, Insn(Op.HALT)), (1, Insn(Op.HALT))):
                ctx.set(dut.imem_we, 1)
                ctx.set(dut.imem_addr, addr)
                ctx.set(dut.imem_data, encode(insn))
                await ctx.tick()
            ctx.set(dut.imem_we, 0)
            for _ in range(4):
                await ctx.tick()
            ctx.set(dut.imem_we, 1)
            ctx.set(dut.imem_addr, 0)
            ctx.set(dut.imem_data, encode(Insn(Op.WAIT, count=wait)))
            for _ in range(gap):
                await ctx.tick()
                ctx.set(dut.imem_we, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.imem_we, 0)
            ctx.set(dut.start, 0)
            for c in range(4 * wait):
                if ctx.get(dut.done):
                    cycles.append(c)
                    return
                await ctx.tick()

        _simulate(dut, None, bench)
        assert cycles, f"{name}: the run did not finish"
        return cycles[0]

    same_cycle, cycle_before = run(0), run(1)
    assert same_cycle == cycle_before >= wait, (same_cycle, cycle_before)
