from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accumulator import AccumulatorMemory
from .interfaces import acc_tag_layout, activation_port_signature, vector_layout, weight_port_signature
from .matmul_array import MatmulArray

__all__ = ["MatmulUnit"]


class MatmulUnit(wiring.Component):
    """The MXM: :class:`MatmulArray` feeding :class:`AccumulatorMemory`.

    Activations carry their accumulator address and accumulate/overwrite flag (the tag,
    :func:`~rtl.interfaces.acc_tag_layout`); the result
    vector leaves the array ``latency`` cycles after the activation entered (``r_*``, for
    observation) and is added into the accumulators on the next cycle. ``rd_addr``/``rd_data``
    read the accumulators (the vector unit's port).
    """

    def __init__(self, config):
        self.config = config
        L = config.lanes
        super().__init__({
            "weights": In(weight_port_signature(config)),
            "activations": In(activation_port_signature(config, acc_tag_layout(config))),
            "r_valid": Out(1), "r_data": Out(vector_layout(L, 32)),
            "rd_addr": In(config.acc_addr_bits),
            "rd_data": Out(vector_layout(L, 32)),
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
        m.submodules.array = array = MatmulArray(cfg, tag_shape=acc_tag_layout(cfg))
        m.submodules.acc = acc = AccumulatorMemory(cfg)
        wiring.connect(m, wiring.flipped(self.weights), array.weights)
        wiring.connect(m, wiring.flipped(self.activations), array.activations)
        m.d.comb += [
            self.r_valid.eq(array.r_valid), self.r_data.eq(array.r_data),
            acc.i_valid.eq(array.r_valid), acc.i_data.eq(array.r_data),
            acc.i_addr.eq(array.r_tag.addr), acc.i_accumulate.eq(array.r_tag.accumulate),
            acc.rd_addr.eq(self.rd_addr), self.rd_data.eq(acc.rd_data),
        ]
        return m
