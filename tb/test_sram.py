"""SRAM banks (MEM slice) against ``model.sram.SramModel``: every output word, every cycle.

Traffic: directed streams (stride 0, 1, odd, wrapping, full-depth sweeps), read-during-write,
partial lane masks, and seeded random traffic with streams on all banks at once.
"""

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from model.sram import SramModel
from tb.common import TB, WATCHDOG, pack, unpack, rng_for, record_stats


class SramTB(TB):
    def __init__(self, dut):
        super().__init__(dut)
        cfg = self.config
        self.model = SramModel(cfg)
        g = lambda b, n: getattr(dut, f"bank__{b}__{n}")
        self.ports = [{n: g(b, n) for n in ("rd_start", "rd_base", "rd_stride", "rd_count",
                                            "rd_addr", "wr_en", "wr_addr", "wr_data", "wr_mask",
                                            "o_valid", "o_data", "rd_busy")}
                      for b in range(cfg.banks)]
        self.checked = 0

    async def start(self):
        await self.reset([p[n] for p in self.ports for n in ("rd_start", "wr_en")])

    async def run(self, schedule):
        """``schedule``: list of (starts, writes) per cycle, as ``SramModel.step`` takes."""
        cfg = self.config
        for starts, writes in schedule:
            for b, p in enumerate(self.ports):
                if b in starts:
                    base, stride, count = starts[b]
                    p["rd_start"].value = 1
                    p["rd_base"].value = base
                    p["rd_stride"].value = stride
                    p["rd_count"].value = count
                else:
                    p["rd_start"].value = 0
                if b in writes:
                    addr, data, mask = writes[b]
                    p["wr_en"].value = 1
                    p["wr_addr"].value = addr
                    p["wr_data"].value = pack(data, 8)
                    p["wr_mask"].value = pack(np.asarray(mask, dtype=int), 1)
                else:
                    p["wr_en"].value = 0
            await ReadOnly()
            busy = [self.model.busy(b) for b in range(cfg.banks)]
            expected = self.model.step(starts, writes)
            for b, p in enumerate(self.ports):
                exp = expected[b]
                valid = int(p["o_valid"].value)
                assert valid == (exp is not None), (
                    f"cycle {self.cycle} bank {b}: o_valid={valid}, model expects "
                    f"{'a word' if exp is not None else 'none'}")
                if exp is not None:
                    got = unpack(p["o_data"].value.to_unsigned(), 8, cfg.lanes)
                    assert np.array_equal(got, exp), (
                        f"cycle {self.cycle} bank {b}: o_data={got.tolist()}, "
                        f"model expects {exp.tolist()}")
                    self.checked += 1
                assert int(p["rd_busy"].value) == busy[b], (
                    f"cycle {self.cycle} bank {b}: rd_busy={int(p['rd_busy'].value)}, "
                    f"model expects {int(busy[b])}")
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    def idle(self, n):
        return [({}, {})] * n


def fill_schedule(cfg, rng, banks=None):
    """Write every word of the given banks (all lanes) with random data, banks in parallel."""
    banks = range(cfg.banks) if banks is None else banks
    full = np.ones(cfg.lanes, dtype=bool)
    return [({}, {b: (a, rng.integers(-128, 128, cfg.lanes), full) for b in banks})
            for a in range(cfg.depth)]


async def filled(dut, name):
    """A started testbench with every bank filled with seeded random words."""
    tb = SramTB(dut)
    rng = rng_for(name)
    await tb.start()
    await tb.run(fill_schedule(tb.config, rng))
    return tb, tb.config, rng


async def finish(tb, name, min_checked):
    await tb.run(tb.idle(4))
    assert tb.checked >= min_checked, f"only {tb.checked} words checked, expected >= {min_checked}"
    record_stats(name, tb.cycle, words=tb.checked)
    tb.dut._log.info(f"{name}: {tb.checked} streamed words checked over {tb.cycle} cycles")


@cocotb.test(**WATCHDOG)
async def test_full_depth_sweep(dut):
    """Fill every bank, then stream each whole bank back with stride 1, all banks at once."""
    tb, cfg, rng = await filled(dut, "test_full_depth_sweep")
    await tb.run([({b: (0, 1, cfg.depth) for b in range(cfg.banks)}, {})] + tb.idle(cfg.depth))
    await finish(tb, "test_full_depth_sweep", cfg.banks * cfg.depth)


@cocotb.test(**WATCHDOG)
async def test_strides(dut):
    """Stride 0 (one word repeated), 1, odd, even, and strides that wrap past the end."""
    tb, cfg, rng = await filled(dut, "test_strides")
    d = cfg.depth
    cases = [(5, 0, 7), (0, 1, 9), (3, 3, d), (d - 2, 1, 6), (d - 1, 7, d // 2),
             (1, d - 1, 11), (0, 2, d), (d // 2, d // 2 + 1, 13)]
    for base, stride, count in cases:
        # the same stream on every bank, back to back with the next case
        await tb.run([({b: (base, stride, count) for b in range(cfg.banks)}, {})] + tb.idle(count - 1))
    await finish(tb, "test_strides", cfg.banks * sum(c for _, _, c in cases))


@cocotb.test(**WATCHDOG)
async def test_read_during_write(dut):
    """Write the address being streamed on the cycle it is read (``bank_start_latency``
    after the start): the read returns the old word (read-first); the next read of it
    returns the new one."""
    tb, cfg, rng = await filled(dut, "test_read_during_write")
    full = np.ones(cfg.lanes, dtype=bool)
    lat = cfg.bank_start_latency
    sched = []
    for _rep in range(2):
        for a in range(16):
            starts = {b: (a, 0, 2) for b in range(cfg.banks)}
            writes = {b: (a, rng.integers(-128, 128, cfg.lanes), full) for b in range(cfg.banks)}
            sched += [(starts, {})] + tb.idle(lat - 1) + [({}, writes)]
    await tb.run(sched)
    await finish(tb, "test_read_during_write", cfg.banks * 64)


@cocotb.test(**WATCHDOG)
async def test_lane_masks(dut):
    """Partial lane write-enables: only the enabled int8 lanes of a word change."""
    tb, cfg, rng = await filled(dut, "test_lane_masks")
    sched = []
    for a in range(64):
        masks = {b: rng.integers(0, 2, cfg.lanes).astype(bool) for b in range(cfg.banks)}
        if a % 8 == 0:
            masks[0][:] = False                                # no lane at all
        sched.append(({}, {b: (a, rng.integers(-128, 128, cfg.lanes), masks[b])
                           for b in range(cfg.banks)}))
    await tb.run(sched)
    await tb.run([({b: (0, 1, 64) for b in range(cfg.banks)}, {})] + tb.idle(64))
    await finish(tb, "test_lane_masks", cfg.banks * 64)


@cocotb.test(**WATCHDOG)
async def test_random_traffic(dut):
    """Seeded random streams (restarts included) and masked writes on all banks at once."""
    tb, cfg, rng = await filled(dut, "test_random_traffic")
    d = cfg.depth
    sched = []
    busy_until = [0] * cfg.banks
    for c in range(3000):
        starts, writes = {}, {}
        for b in range(cfg.banks):
            if (c >= busy_until[b] and rng.random() < 0.5) or rng.random() < 0.01:
                stride = int(rng.choice([0, 1, 1, 2, 3, d - 1, rng.integers(0, d)]))
                count = int(rng.choice([0, 1, 2, rng.integers(1, 64), d]))  # 0: nothing
                starts[b] = (int(rng.integers(0, d)), stride, count)
                busy_until[b] = c + count
            if rng.random() < 0.4:
                writes[b] = (int(rng.integers(0, d)), rng.integers(-128, 128, cfg.lanes),
                             rng.integers(0, 2, cfg.lanes).astype(bool))
        sched.append((starts, writes))
    await tb.run(sched)
    await finish(tb, "test_random_traffic", 1000)
