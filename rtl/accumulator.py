from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .delay import delay, taps
from .primitives import (falling_edge_read_port, falling_edge_reads, read_first_port,
                         replicated_register)

__all__ = ["AccumulatorMemory"]


class AccumulatorMemory(wiring.Component):
    """``acc_depth`` int32 vectors that result vectors are added into (or overwrite).

    Ports
    -----
    i_valid, i_addr, i_accumulate, i_data : In
        A result vector arriving this cycle: ``acc[addr] = (acc[addr] if accumulate else 0)
        + data``, lane-wise, wrapping mod 2**32. The memory is read on the cycle it
        arrives, the word passes ``config.read_registers`` registers, and the sum is written
        at the end of cycle ``t + config.acc_update_delay``; the writes that read did not see
        (of the updates that arrived in the ``acc_update_delay`` cycles before) are
        forwarded, so back-to-back updates of one address are exact. With a read register, no
        path runs from a block RAM's output to anything but a register.
    rd_addr : In, rd_data : Out
        Random read with ``latency`` (``config.acc_read_latency``: ``acc_address_latency``
        registers of the address, the block RAM's read and ``read_registers`` registers),
        read-first: a read whose address is on ``rd_addr`` on cycle ``c`` sees updates
        written on cycles before ``c + acc_address_latency``; an update arriving on ``i_*``
        at cycle ``t`` is visible to a read from cycle ``t + config.acc_visible_delay``
        (``update_visible``).
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
        rd = read_first_port(m, mem, "rd", platform)
        a = cfg.acc_address_latency
        m.d.comb += [rd.addr.eq(delay(m, self.rd_addr, a, "rd_addr")),
                     self.rd_data.eq(delay(m, rd.data, self.latency - 1 - a, "rd_data"))]
        # the update through 2D - 1 stages: at stage D the word it adds to is added and
        # written
        valid = taps(m, self.i_valid, 2 * D - 1, "valid")
        addr = taps(m, self.i_addr, 2 * D - 1, "addr")
        incoming = delay(m, self.i_data, D, "incoming")
        total = Signal.like(self.i_data, name="total")
        m.d.comb += [wr.en.eq(valid[D]), wr.addr.eq(addr[D]), wr.data.eq(total)]
        if D == 1 and falling_edge_reads(platform):
            # an iCE40 (the iCEBreaker's): the read-modify-write reads on the falling edge of
            # the cycle it adds in, half a cycle after the previous update was written, so
            # it sees every earlier update and nothing is forwarded: no read register, no
            # register of the last sum, no selects (the same sums on the same cycles)
            rmw = falling_edge_read_port(m, mem, "rmw")
            accumulate = delay(m, self.i_accumulate, 1, "accumulate")
            m.d.comb += rmw.addr.eq(addr[1])
            old = [Mux(accumulate, rmw.data[n], 0) for n in range(L)]
        else:
            # the read on the update's arrival, its word through D - 1 registers; stages
            # D + 1 .. 2D hold the D writes that read did not see (the updates that arrived
            # in the D cycles before), newest first
            rmw = read_first_port(m, mem, "rmw", platform)
            m.d.comb += rmw.addr.eq(self.i_addr)
            accumulate = taps(m, self.i_accumulate, D - 1, "accumulate")
            stored = delay(m, rmw.data, D - 1, "stored")
            sums = taps(m, total, D, "sum")[1:]
            # which word to add to, decided a stage early and registered (a flip-flop, not an
            # address compare, drives the wide select): write k (newest first), the read's
            # word, or none (an overwrite)
            # (one copy of each select per lane, rtl.primitives.replicated_register)
            s = D - 1
            if s:
                # the address compares a stage earlier still, into flip-flops (the taps
                # shift every cycle): the selects' copies are each a LUT of flip-flops (the
                # compares ahead of them were the ULX3S 8-lane tile's paths at 100 MHz)
                same = [delay(m, addr[s - 1] == addr[s - 1 + k], 1, f"same{k}")
                        for k in range(1, D + 1)]
            else:
                same = [addr[s] == addr[s + k] for k in range(1, D + 1)]
            hits = [valid[s + k] & same[k - 1] for k in range(1, D + 1)]
            use_sum = [replicated_register(m, accumulate[s] & hits[k] & ~Cat(*hits[:k]).any(),
                                           L, f"use_sum{k + 1}", platform) for k in range(D)]
            use_stored = replicated_register(m, accumulate[s] & ~Cat(*hits).any(), L,
                                             "use_stored", platform)
            old = []
            for n in range(L):
                word = Value.cast(stored[n]) & use_stored[n].replicate(32)
                for k in range(D):
                    word |= Value.cast(sums[k][n]) & use_sum[k][n].replicate(32)
                old.append(word)
        for n in range(L):
            m.d.comb += total[n].eq(old[n].as_signed() + incoming[n])
        return m
