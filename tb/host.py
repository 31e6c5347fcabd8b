"""The tile's host port from the testbench side: the same operations as ``TileModel``'s.

Used by the top-level testbench and by the ``sim`` back end (``tb/run_job.py``). Whole
programs run with no Python per cycle: after ``start`` the driver waits for ``done``.
"""

import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from lpu.contract.isa import encode, param_words
from lpu.contract.isa import COUNTERS, Region
from tb.common import TB, pack, unpack


class HostDriver(TB):
    def __init__(self, dut):
        super().__init__(dut)
        cfg = self.config

    async def start_clock_and_reset(self):
        d = self.dut
        await self.reset([d.h_we, d.h_re, d.start])

    async def _write(self, region, addr, value, bank=0, part=0):
        d = self.dut
        d.h_we.value = 1
        d.h_region.value = region
        d.h_bank.value = bank
        d.h_addr.value = addr
        d.h_part.value = part
        d.h_wdata.value = value
        await RisingEdge(d.clk)
        d.h_we.value = 0

    async def write_sram(self, bank, addr, words):
        words = np.asarray(words, dtype=np.int8).reshape(-1, self.config.lanes)
        for i, w in enumerate(words):
            await self._write(Region.SRAM, (addr + i) % self.config.depth, pack(w, 8), bank=bank)

    async def write_program(self, program):
        for pc, insn in enumerate(program):
            word = insn if isinstance(insn, int) else encode(insn)
            await self._write(Region.IMEM, pc, word)

    async def write_params_packed(self, row, packed):
        cfg = self.config
        for part, word in enumerate(param_words(cfg.lanes, cfg.host_data_bits, packed)):
            await self._write(Region.PARAM, row, word, part=part)

    async def _read(self, region, addrs, bank=0):
        """Pipelined reads: one address per cycle, data one cycle later."""
        d = self.dut
        addrs = list(addrs)
        out = []
        for i in range(len(addrs) + 1):
            d.h_re.value = int(i < len(addrs))
            if i < len(addrs):
                d.h_region.value = region
                d.h_bank.value = bank
                d.h_addr.value = addrs[i]
            await ReadOnly()
            if i > 0:
                assert int(d.h_rvalid.value) == 1, "host read: h_rvalid low one cycle after h_re"
                out.append(d.h_rdata.value.to_unsigned())
            await RisingEdge(d.clk)
        return out

    async def read_sram(self, bank, addr, count):
        vals = await self._read(Region.SRAM, [(addr + i) % self.config.depth for i in range(count)], bank)
        return np.stack([unpack(v, 8, self.config.lanes) for v in vals]).astype(np.int8) \
            if vals else np.zeros((0, self.config.lanes), np.int8)

    async def read_counters(self):
        vals = await self._read(Region.COUNTER, range(len(COUNTERS)))
        return {name: int(v) & 0xFFFFFFFF for name, v in zip(COUNTERS, vals)}

    async def run(self, program, max_cycles):
        """Load ``program``, start it and wait for ``done`` with no Python per cycle, under a
        simulated-time limit of ``max_cycles``; returns the counters."""
        d = self.dut
        await self.write_program(program)
        d.start.value = 1
        await RisingEdge(d.clk)
        d.start.value = 0
        await with_timeout(RisingEdge(d.done), max_cycles * 10, "ns")
        await RisingEdge(d.clk)
        return await self.read_counters()
