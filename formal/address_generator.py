from amaranth import *
from amaranth.lib.wiring import In

from rtl.address_generator import AddressGenerator

from .harness import Harness

__all__ = ["AddressGeneratorHarness"]


class AddressGeneratorHarness(Harness):
    """The address generator's contract (``rtl/address_generator.py``) against a reference
    that computes address ``i`` of a stream as ``(base + i*stride) mod 2**addr_bits`` (a
    product, where the design adds): every ``start``, base, stride (0, wrapping) and count
    (0 included), restarts while busy, on every cycle, the first address the cycle after
    ``start``. Proved by k-induction at a narrow
    width (the design is one description for every width): 4 address bits, 4 count bits."""

    ADDR_BITS = 4
    COUNT_BITS = 4

    def __init__(self, config):
        A, C = self.ADDR_BITS, self.COUNT_BITS
        super().__init__(config, {"start": In(1), "base": In(A), "stride": In(A), "count": In(C)})

    def build(self, m):
        A, C = self.ADDR_BITS, self.COUNT_BITS
        m.submodules.dut = dut = AddressGenerator(A, C)
        m.d.comb += [dut.start.eq(self.start), dut.base.eq(self.base),
                     dut.stride.eq(self.stride), dut.count.eq(self.count)]
        # reference: the stream's base, stride, length and the index of the address due
        # this cycle; a start takes effect from the next cycle (``bank_start_latency``)
        base, stride = Signal(A), Signal(A)
        n, i = Signal(C), Signal(C)
        running = i < n
        with m.If(self.start):
            m.d.sync += [base.eq(self.base), stride.eq(self.stride), n.eq(self.count),
                         i.eq(0)]
        with m.Elif(running):
            m.d.sync += i.eq(i + 1)
        self.dut_addr, self.ref_base = dut.addr, base
        self.check(m, dut.valid == running, "valid")
        self.check(m, dut.addr == (base + i * stride)[:A], "addr", when=running)
        self.check(m, dut.busy == (i + 1 < n), "busy")
        self.check(m, dut.busy_next == (i + 2 < n), "busy_next")
        self.check(m, dut.busy_next2 == (i + 3 < n), "busy_next2")
        self.cover(m, dut.valid & (dut.addr < base) & (stride != 0) & (i > 1), "wrapped")
