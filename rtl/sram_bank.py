from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .address_generator import AddressGenerator
from .delay import delay
from .primitives import read_first_port

__all__ = ["SramBank", "bank_port_signature"]


def bank_port_signature(config):
    """The ports of one bank, from the bank's side."""
    return wiring.Signature({
        # streaming read: (base, stride, count <= depth) -> one word per cycle on o_data
        "rd_start": In(1), "rd_base": In(config.addr_bits), "rd_stride": In(config.addr_bits),
        "rd_count": In(config.depth.bit_length()), "rd_busy": Out(1), "rd_busy_next": Out(1),
        "rd_busy_next2": Out(1),
        "o_valid": Out(1), "o_data": Out(config.word_bits),
        # random-access read (used by the host port when no stream runs)
        "rd_addr": In(config.addr_bits),
        # one write per cycle with a write-enable per int8 lane
        "wr_en": In(1), "wr_addr": In(config.addr_bits), "wr_data": In(config.word_bits),
        "wr_mask": In(config.lanes),
    })


class SramBank(wiring.Component):
    """One SRAM bank: ``depth`` words of ``lanes`` int8, one read and one write per cycle.

    Reads come from a streaming :class:`AddressGenerator`: after ``rd_start`` the words at
    ``base + i*stride`` (mod ``depth``) appear on ``o_data`` with ``o_valid`` high,
    ``latency`` cycles after the cycle their address was generated (the block RAM's read,
    then ``read_registers`` registers; the first address one cycle after ``rd_start``:
    ``bank_start_latency``), one per cycle; ``rd_busy``: a
    start now would cut the running stream short. When no stream runs, the word at
    ``rd_addr`` appears on ``o_data`` ``latency`` cycles later with ``o_valid`` low.

    Writes take effect at the end of the cycle ``wr_en`` is high, only in lanes whose
    ``wr_mask`` bit is set.

    Read-during-write is **read-first**: a read of the address being written in the same
    cycle returns the old word. Chosen so the read port is an ordinary synchronous BRAM port
    on every FPGA family, and so that the golden model's rule is simply "a write is visible
    from the next cycle on".
    """

    def __init__(self, config):
        self.config = config
        super().__init__(bank_port_signature(config))

    @property
    def latency(self):
        return self.config.sram_read_latency

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        m.submodules.agen = agen = AddressGenerator(cfg.addr_bits, cfg.depth.bit_length())
        m.submodules.mem = mem = Memory(shape=unsigned(cfg.word_bits), depth=cfg.depth, init=[])
        wr = mem.write_port(granularity=8)
        rd = read_first_port(m, mem, "rd", platform)     # read-first, see the docstring

        m.d.comb += [
            agen.start.eq(self.rd_start), agen.base.eq(self.rd_base),
            agen.stride.eq(self.rd_stride), agen.count.eq(self.rd_count),
            self.rd_busy.eq(agen.busy), self.rd_busy_next.eq(agen.busy_next),
            self.rd_busy_next2.eq(agen.busy_next2),
            rd.addr.eq(Mux(agen.valid, agen.addr, self.rd_addr)),
            wr.addr.eq(self.wr_addr), wr.data.eq(self.wr_data),
            wr.en.eq(Mux(self.wr_en, self.wr_mask, 0)),
        ]
        # with read_registers, the block RAM's word is registered before anything uses it
        # (``latency`` - 1 registers after the memory's own)
        m.d.comb += [self.o_data.eq(delay(m, rd.data, self.latency - 1, "o_data")),
                     self.o_valid.eq(delay(m, agen.valid, self.latency, "o_valid"))]
        return m
