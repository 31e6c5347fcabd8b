from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .delay import delay

__all__ = ["AccumulatorMemory"]


class AccumulatorMemory(wiring.Component):
    """``acc_depth`` int32 vectors that result vectors are added into (or overwrite).

    Ports
    -----
    i_valid, i_addr, i_accumulate, i_data : In
        A result vector arriving this cycle: ``acc[addr] = (acc[addr] if accumulate else 0)
        + data``, lane-wise, wrapping mod 2**32. The memory is read on the cycle it
        arrives, the word registered, and the sum written at the end of cycle ``t +
        config.acc_update_delay``; the writes that read did not see (of the updates that
        arrived in the ``acc_update_delay`` cycles before) are forwarded, so back-to-back
        updates of one address are exact. No path runs from a block RAM's output to anything
        but a register.
    rd_addr : In, rd_data : Out
        Random read with ``latency`` (``config.acc_read_latency``: the block RAM's read and a
        register), read-first: a read on cycle ``c`` sees updates written on cycles before
        ``c``; an update arriving on ``i_*`` at cycle ``t`` is visible to a read from cycle
        ``t + config.acc_visible_delay`` (``update_visible``).
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
        cfg = self.config
        L, D = cfg.lanes, cfg.acc_update_delay
        m = Module()
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(signed(32), L),
                                        depth=cfg.acc_depth, init=[])
        wr = mem.write_port()
        rmw = mem.read_port(transparent_for=())
        rd = mem.read_port(transparent_for=())
        # the update, D cycles on: its read's word (the block RAM's, then D - 1 registers)
        valid = delay(m, self.i_valid, D, "valid")
        addr = delay(m, self.i_addr, D, "addr")
        accumulate = delay(m, self.i_accumulate, D, "accumulate")
        incoming = delay(m, self.i_data, D, "incoming")
        m.d.comb += rmw.addr.eq(self.i_addr)
        stored = delay(m, rmw.data, D - 1, "stored")
        # the D writes since that read, newest first: (valid, addr, sum) of each
        total = Signal.like(self.i_data, name="total")
        written = [(delay(m, valid, k, f"w_valid{k}"), delay(m, addr, k, f"w_addr{k}"),
                    delay(m, total, k, f"w_sum{k}")) for k in range(1, D + 1)]
        old = Value.cast(stored)
        for w_valid, w_addr, w_sum in reversed(written):
            old = Mux(w_valid & (w_addr == addr), Value.cast(w_sum), old)
        old = data.ArrayLayout(signed(32), L)(old)
        for n in range(L):
            m.d.comb += total[n].eq(Mux(accumulate, old[n], 0) + incoming[n])
        m.d.comb += [wr.en.eq(valid), wr.addr.eq(addr), wr.data.eq(total)]
        m.d.comb += [rd.addr.eq(self.rd_addr),
                     self.rd_data.eq(delay(m, rd.data, self.latency - 1, "rd_data"))]
        return m
