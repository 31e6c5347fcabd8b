from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from lpu.isa import param_fields

__all__ = ["VectorUnit", "vxm_params_layout"]


def vxm_params_layout(lanes):
    """Per-output-channel parameters of one row of the parameter memory, laid out as
    ``lpu.isa.param_fields`` says (the host packs rows with ``lpu.isa.pack_params``)."""
    return data.StructLayout({
        name: data.ArrayLayout(signed(bits), n) if n > 1 else signed(bits)
        for name, bits, n in param_fields(lanes)})


class VectorUnit(wiring.Component):
    """Per-lane bias add and TFLite int8 requantisation (or int32 pass-through).

    Each input vector comes with its parameters (``i_params``, a row of
    :func:`vxm_params_layout`) and its mode (``i_quant``). ``latency`` cycles later:

    * ``o_i32 = acc + bias`` (wrapping), and
    * ``o_i8 = clamp(MultiplyByQuantizedMultiplier(acc + bias, multiplier, shift)
      + zero_point, act_min, act_max)`` with gemmlowp's double rounding, exactly as
      ``model.vxm.requantize``.

    Stages (one register each): bias add and left shift | 32x32 multiply | rounding
    high half | rounding right shift, zero point, clamp.
    """

    def __init__(self, config):
        self.config = config
        L = config.lanes
        super().__init__({
            "i_valid": In(1), "i_quant": In(1), "i_data": In(data.ArrayLayout(signed(32), L)),
            "i_params": In(vxm_params_layout(L)),
            "o_valid": Out(1), "o_quant": Out(1),
            "o_i32": Out(data.ArrayLayout(signed(32), L)),
            "o_i8": Out(data.ArrayLayout(signed(8), L)),
        })

    @property
    def latency(self):
        return self.config.vxm_latency

    def elaborate(self, platform):
        L = self.config.lanes
        p = self.i_params
        m = Module()
        v = [Signal(name=f"valid{i}") for i in range(4)]
        q = [Signal(name=f"quant{i}") for i in range(4)]
        m.d.sync += [v[0].eq(self.i_valid), q[0].eq(self.i_quant)]
        m.d.sync += [v[i].eq(v[i - 1]) for i in range(1, 4)]
        m.d.sync += [q[i].eq(q[i - 1]) for i in range(1, 4)]
        zp = [Signal(signed(8), name=f"zp{i}") for i in range(3)]
        lo = [Signal(signed(8), name=f"amin{i}") for i in range(3)]
        hi = [Signal(signed(8), name=f"amax{i}") for i in range(3)]
        m.d.sync += [zp[0].eq(p.zero_point), lo[0].eq(p.act_min), hi[0].eq(p.act_max)]
        for i in (1, 2):
            m.d.sync += [zp[i].eq(zp[i - 1]), lo[i].eq(lo[i - 1]), hi[i].eq(hi[i - 1])]
        for n in range(L):
            # stage 1: x = acc + bias (wraps), x << left (wraps), right shift amount
            x = Signal(signed(32), name=f"x{n}")
            xs = Signal(signed(32), name=f"xs{n}")
            mult1 = Signal(signed(32), name=f"mult{n}")
            right = [Signal(5, name=f"right{n}_{i}") for i in range(3)]
            shift = p.shift[n]
            left = Mux(shift > 0, shift, 0)[:5]
            m.d.sync += [
                x.eq(self.i_data[n] + p.bias[n]),
                xs.eq(((self.i_data[n] + p.bias[n])[:32] << left)[:32]),
                mult1.eq(p.multiplier[n]),
                right[0].eq(Mux(shift < 0, -shift, 0)[:5]),
            ]
            m.d.sync += [right[i].eq(right[i - 1]) for i in (1, 2)]
            # stage 2: 64-bit product, and the one case SRDHM saturates
            prod = Signal(signed(64), name=f"prod{n}")
            ovf = Signal(name=f"ovf{n}")
            m.d.sync += [prod.eq(xs * mult1),
                         ovf.eq((xs == -(1 << 31)) & (mult1 == -(1 << 31)))]
            # stage 3: round(prod / 2**31), ties away from zero (nudge, then C division)
            t = Signal(signed(66), name=f"t{n}")
            m.d.comb += t.eq(prod + Mux(prod >= 0, 1 << 30, 1 - (1 << 30)))
            high = Signal(signed(32), name=f"high{n}")
            quotient = (t >> 31) + ((t < 0) & (t[:31] != 0))
            m.d.sync += high.eq(Mux(ovf, (1 << 31) - 1, quotient[:32]))
            # stage 4: rounding right shift, zero point, clamp
            mask = Signal(32, name=f"mask{n}")
            m.d.comb += mask.eq((Const(1, 33) << right[2]) - 1)
            remainder = high.as_unsigned() & mask
            threshold = (mask >> 1) + (high < 0)
            rounded = Signal(signed(34), name=f"rounded{n}")
            m.d.comb += rounded.eq((high >> right[2]) + (remainder > threshold) + zp[2])
            clamped = Mux(rounded < lo[2], lo[2], Mux(rounded > hi[2], hi[2], rounded))
            x2, x3 = Signal(signed(32), name=f"x{n}_2"), Signal(signed(32), name=f"x{n}_3")
            m.d.sync += [x2.eq(x), x3.eq(x2), self.o_i32[n].eq(x3), self.o_i8[n].eq(clamped[:8])]
        m.d.comb += [self.o_valid.eq(v[3]), self.o_quant.eq(q[3])]
        return m
