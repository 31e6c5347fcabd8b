from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["AccumulatorMemory"]


class AccumulatorMemory(wiring.Component):
    """``acc_depth`` int32 vectors that result vectors are added into (or overwrite).

    Ports
    -----
    i_valid, i_addr, i_accumulate, i_data : In
        A result vector arriving this cycle: ``acc[addr] = (acc[addr] if accumulate else 0)
        + data``, lane-wise, wrapping mod 2**32. The write happens at the end of the *next*
        cycle (read-modify-write); back-to-back updates of one address are exact because the
        read side of the update is transparent to the write.
    rd_addr : In, rd_data : Out
        Random read with ``latency`` (``config.acc_read_latency``) 1, read-first: a read on
        cycle ``c`` sees updates written on cycles before ``c``; an update arriving on
        ``i_*`` at cycle ``t`` is written on ``t + config.acc_update_delay`` and visible to a
        read from cycle ``t + config.acc_visible_delay`` (``update_visible``).
    """

    def __init__(self, config):
        self.config = config
        L = config.lanes
        super().__init__({
            "i_valid": In(1), "i_addr": In(config.acc_addr_bits), "i_accumulate": In(1),
            "i_data": In(data.ArrayLayout(signed(32), L)),
            "rd_addr": In(config.acc_addr_bits),
            "rd_data": Out(data.ArrayLayout(signed(32), L)),
        })

    @property
    def latency(self):
        return self.config.acc_read_latency

    @property
    def update_visible(self):
        return self.config.acc_visible_delay

    def elaborate(self, platform):
        L = self.config.lanes
        m = Module()
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(signed(32), L),
                                        depth=self.config.acc_depth, init=[])
        wr = mem.write_port()
        rmw = mem.read_port(transparent_for=(wr,))
        rd = mem.read_port(transparent_for=())
        valid = Signal()
        addr = Signal.like(self.i_addr)
        accumulate = Signal()
        incoming = Signal.like(self.i_data)
        m.d.comb += rmw.addr.eq(self.i_addr)
        m.d.sync += [valid.eq(self.i_valid), addr.eq(self.i_addr),
                     accumulate.eq(self.i_accumulate), incoming.eq(self.i_data)]
        m.d.comb += [wr.en.eq(valid), wr.addr.eq(addr)]
        for n in range(L):
            m.d.comb += wr.data[n].eq(Mux(accumulate, rmw.data[n], 0) + incoming[n])
        m.d.comb += [rd.addr.eq(self.rd_addr), self.rd_data.eq(rd.data)]
        return m
