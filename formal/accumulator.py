from amaranth import *
from amaranth.lib import data
from amaranth.lib.wiring import In

from rtl.accumulator import AccumulatorMemory
from rtl.delay import delay

from .harness import Harness

__all__ = ["AccumulatorHarness"]


class _Observed(AccumulatorMemory):
    """The accumulator with one more (asynchronous, read-only) port on its memory, so the
    proof can state what the memory holds, not only what a read returns."""

    def __init__(self, config):
        super().__init__(config)
        self.peek_addr = Signal(config.acc_addr_bits)
        self.peek_data = Signal(32 * config.lanes)

    def elaborate(self, platform):
        m = super().elaborate(platform)
        peek = m.submodules.mem.read_port(domain="comb")
        m.d.comb += [peek.addr.eq(self.peek_addr), self.peek_data.eq(peek.data)]
        return m


class AccumulatorHarness(Harness):
    """The accumulator's read-modify-write (``rtl/accumulator.py``): for one address the
    solver picks (``watch``), a shadow vector applies every update to it in arrival order
    (``acc = (acc if accumulate else 0) + data``, lane-wise mod 2**32), each becoming
    visible ``acc_visible_delay`` cycles after it arrives; every read of that address returns
    the shadow as it stood on the read's cycle, ``acc_read_latency`` later. Updates arrive on
    any cycles (back to back to one address included), reads on any cycles.

    Proved by k-induction with the invariant that the memory word at ``watch`` equals the
    shadow as it stood ``acc_address_latency`` cycles before (an update is written on
    ``t + acc_update_delay`` and visible to a read whose address leaves on
    ``t + acc_visible_delay``, reaching the memory ``acc_address_latency`` later)."""

    def __init__(self, config):
        L, A = config.lanes, config.acc_addr_bits
        super().__init__(config, {
            "i_valid": In(1), "i_addr": In(A), "i_accumulate": In(1),
            "i_data": In(data.ArrayLayout(signed(32), L)), "rd_addr": In(A), "watch": In(A)})

    def build(self, m):
        cfg = self.config
        L = cfg.lanes
        m.submodules.dut = dut = _Observed(cfg)
        m.d.comb += [dut.i_valid.eq(self.i_valid), dut.i_addr.eq(self.i_addr),
                     dut.i_accumulate.eq(self.i_accumulate), dut.i_data.eq(self.i_data),
                     dut.rd_addr.eq(self.rd_addr)]
        self.constant(m, self.watch)
        hit = delay(m, self.i_valid & (self.i_addr == self.watch), cfg.acc_visible_delay - 1, "hit")
        acc = delay(m, self.i_accumulate, cfg.acc_visible_delay - 1, "accumulate")
        upd = delay(m, self.i_data.as_value(), cfg.acc_visible_delay - 1, "update")
        shadow = Signal(32 * L)             # acc[watch] as a read sees it now
        lane = lambda v, n: v.word_select(n, 32)
        with m.If(hit):
            m.d.sync += [lane(shadow, n).eq(Mux(acc, lane(shadow, n), 0) + lane(upd, n))
                         for n in range(L)]
        # an update arriving on t is applied on t + visible - 1: a read from t + visible sees it
        seen = delay(m, shadow, cfg.acc_read_latency, "seen")
        reading = delay(m, self.rd_addr == self.watch, cfg.acc_read_latency, "reading")
        m.d.comb += dut.peek_addr.eq(self.watch)
        # the memory holds what a read whose address left acc_address_latency ago sees
        memory = delay(m, shadow, cfg.acc_address_latency, "memory")
        self.check(m, dut.peek_data == memory, "memory")
        self.check(m, dut.rd_data.as_value() == seen, "read", when=reading)
        self.cover(m, reading & (lane(seen, 0) != 0) & (lane(seen, L - 1) != 0) & self.i_valid &
                   (self.i_addr == self.watch) & self.i_accumulate, "accumulated")
