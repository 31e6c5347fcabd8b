from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AddressGenerator"]


class AddressGenerator(wiring.Component):
    """Streams ``count`` addresses ``base, base+stride, ...`` one per cycle, from the cycle
    after ``start``.

    Ports
    -----
    start : In(1)
        Begin a stream with ``base``, ``stride`` and ``count`` (sampled this cycle). Its first
        address is driven on ``addr`` on the next cycle (``bank_start_latency`` = 1: the
        start only loads registers, so that the block RAM's address comes from flip-flops,
        not from the sequencer's issue decision). An address of the previous stream due this
        cycle is still driven; a start while ``busy`` cuts the previous stream short.
    addr : Out(addr_bits)
        Addresses wrap at ``2**addr_bits`` (the bank's end); stride 0 repeats ``base``.
    valid : Out(1)
        ``addr`` is part of a stream this cycle.
    busy : Out(1)
        The stream has an address due next cycle: a ``start`` is accepted (cuts nothing off)
        while it is low. A ``count`` of 0 emits nothing.
    busy_next : Out(1)
        The stream has an address due two cycles from now: ``busy`` next cycle, if no start
        comes this cycle (for a start that is registered once more on its way here).
    busy_next2 : Out(1)
        An address due three cycles from now: ``busy_next`` next cycle, if no start comes
        this cycle (for the sequencer's issue rule, computed a cycle ahead).

    ``addr``, ``valid``, ``busy``, ``busy_next`` and ``busy_next2`` are flip-flops.
    """

    def __init__(self, addr_bits, count_bits=16):
        self.addr_bits = addr_bits
        super().__init__({
            "start": In(1), "base": In(addr_bits), "stride": In(addr_bits),
            "count": In(count_bits),
            "addr": Out(addr_bits), "valid": Out(1), "busy": Out(1), "busy_next": Out(1),
            "busy_next2": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        nxt = Signal(self.addr_bits)
        stride = Signal(self.addr_bits)
        left = Signal.like(self.count)              # addresses still to drive, this one included
        m.d.comb += self.addr.eq(nxt)
        # what the flags stand for, on every cycle (``formal.sequencer`` checks them, so that
        # its induction knows them)
        self.invariants = {"valid": self.valid == (left != 0), "busy": self.busy == (left > 1),
                           "busy_next": self.busy_next == (left > 2),
                           "busy_next2": self.busy_next2 == (left > 3)}
        with m.If(self.start):
            m.d.sync += [nxt.eq(self.base), stride.eq(self.stride), left.eq(self.count),
                         self.valid.eq(self.count != 0), self.busy.eq(self.count > 1),
                         self.busy_next.eq(self.count > 2), self.busy_next2.eq(self.count > 3)]
        with m.Elif(self.valid):
            m.d.sync += [nxt.eq(nxt + stride), left.eq(left - 1),
                         self.valid.eq(left > 1), self.busy.eq(left > 2),
                         self.busy_next.eq(left > 3), self.busy_next2.eq(left > 4)]
        return m
