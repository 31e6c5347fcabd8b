from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AddressGenerator"]


class AddressGenerator(wiring.Component):
    """Streams ``count`` addresses ``base, base+stride, ...`` one per cycle.

    Ports
    -----
    start : In(1)
        Begin a stream with ``base``, ``stride`` and ``count`` (sampled this cycle). The first
        address is driven on ``addr`` in the same cycle. A start while ``busy`` restarts.
    addr : Out(addr_bits)
        Addresses wrap at ``2**addr_bits`` (the bank's end); stride 0 repeats ``base``.
    valid : Out(1)
        ``addr`` is part of a stream this cycle.
    busy : Out(1)
        The stream has addresses left after this cycle; a new ``start`` is accepted once it
        is low. A ``count`` of 0 emits nothing. A flip-flop (computed with the address
        count's next value), so that the sequencer's issue decision starts at one.
    """

    def __init__(self, addr_bits, count_bits=16):
        self.addr_bits = addr_bits
        super().__init__({
            "start": In(1), "base": In(addr_bits), "stride": In(addr_bits),
            "count": In(count_bits),
            "addr": Out(addr_bits), "valid": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        nxt = Signal(self.addr_bits)
        stride = Signal(self.addr_bits)
        remaining = Signal.like(self.count)
        with m.If(self.start):
            m.d.comb += [self.addr.eq(self.base), self.valid.eq(self.count != 0)]
            m.d.sync += [
                nxt.eq(self.base + self.stride), stride.eq(self.stride),
                remaining.eq(Mux(self.count != 0, self.count - 1, 0)),
                self.busy.eq(self.count > 1),
            ]
        with m.Elif(remaining != 0):
            m.d.comb += [self.addr.eq(nxt), self.valid.eq(1)]
            m.d.sync += [nxt.eq(nxt + stride), remaining.eq(remaining - 1),
                         self.busy.eq(remaining > 1)]
        return m
