from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .accumulator import AccumulatorMemory
from .matmul_array import MatmulArray

__all__ = ["MatmulUnit"]


class MatmulUnit(wiring.Component):
    """The MXM: :class:`MatmulArray` feeding :class:`AccumulatorMemory`.

    Activations carry their accumulator address and accumulate/overwrite flag; the result
    vector leaves the array ``latency`` cycles after the activation entered (``r_*``, for
    observation) and is added into the accumulators on the next cycle. ``rd_addr``/``rd_data``
    read the accumulators (the vector unit's port).
    """

    def __init__(self, config):
        self.config = config
        L = config.lanes
        super().__init__({
            "w_valid": In(1), "w_buf": In(1), "w_row": In(range(L)),
            "w_data": In(data.ArrayLayout(signed(8), L)),
            "a_valid": In(1), "a_buf": In(1), "a_addr": In(config.acc_addr_bits),
            "a_accumulate": In(1), "a_data": In(data.ArrayLayout(signed(8), L)),
            "r_valid": Out(1), "r_data": Out(data.ArrayLayout(signed(32), L)),
            "rd_addr": In(config.acc_addr_bits),
            "rd_data": Out(data.ArrayLayout(signed(32), L)),
        })

    @property
    def latency(self):
        """Activation in -> result vector out of the array."""
        return self.config.mxm_latency

    @property
    def acc_visible(self):
        """Activation in -> its accumulator update readable on ``rd_*``."""
        return self.config.mxm_latency + self.config.acc_visible_delay

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        tag_bits = cfg.acc_addr_bits + 1
        m.submodules.array = array = MatmulArray(cfg, tag_bits=tag_bits)
        m.submodules.acc = acc = AccumulatorMemory(cfg)
        m.d.comb += [
            array.w_valid.eq(self.w_valid), array.w_buf.eq(self.w_buf),
            array.w_row.eq(self.w_row), array.w_data.eq(self.w_data),
            array.a_valid.eq(self.a_valid), array.a_buf.eq(self.a_buf),
            array.a_data.eq(self.a_data), array.a_tag.eq(Cat(self.a_addr, self.a_accumulate)),
            self.r_valid.eq(array.r_valid), self.r_data.eq(array.r_data),
            acc.i_valid.eq(array.r_valid), acc.i_data.eq(array.r_data),
            acc.i_addr.eq(array.r_tag[:cfg.acc_addr_bits]),
            acc.i_accumulate.eq(array.r_tag[cfg.acc_addr_bits]),
            acc.rd_addr.eq(self.rd_addr), self.rd_data.eq(acc.rd_data),
        ]
        return m
