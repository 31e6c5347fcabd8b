from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from lpu.contract.isa import ROUNDING, param_fields

__all__ = ["VectorUnit", "vxm_params_layout"]


def vxm_params_layout(lanes):
    """Per-output-channel parameters of one row of the parameter memory, laid out as
    ``lpu.contract.isa.param_fields`` says (the host packs rows with ``lpu.contract.isa.pack_params``)."""
    return data.StructLayout({
        name: data.ArrayLayout(signed(bits), n) if n > 1 else signed(bits)
        for name, bits, n in param_fields(lanes)})


class VectorUnit(wiring.Component):
    """Per-lane bias add and TFLite int8 requantisation (or int32 pass-through).

    A vector is presented for ``vxm_passes`` consecutive cycles, pass ``i_pass`` = 0, 1, ...,
    with its parameters (``i_params``, a row of :func:`vxm_params_layout`) and its mode
    (``i_quant``); each pass requantises ``vxm_group`` lanes (pass ``k``: lanes ``k*G`` to
    ``k*G + G - 1``), so one ``32 x 32`` multiplier serves ``vxm_passes`` lanes. ``latency``
    cycles after pass 0 (``o_valid``):

    * ``o_i32 = acc + bias`` (wrapping), and
    * ``o_i8 = clamp(MultiplyByQuantizedMultiplier(acc + bias, multiplier, shift)
      + zero_point, act_min, act_max)`` in the row's rounding (``rounding``: single or
      double, ``lpu.contract.isa.ROUNDING``), exactly as ``model.vxm.requantize``.

    Stages (one register each): bias add (and double's left shift) | one exact 32x32
    multiply for both roundings | single: add 2**(t-1) and shift right by t = 31 - shift;
    double: the rounding high half | double's rounding right shift, zero point, clamp (into
    the output lanes of the pass).
    """

    def __init__(self, config):
        self.config = config
        L = config.lanes
        super().__init__({
            "i_valid": In(1), "i_pass": In(config.vxm_pass_bits), "i_quant": In(1),
            "i_data": In(data.ArrayLayout(signed(32), L)),
            "i_params": In(vxm_params_layout(L)),
            "o_valid": Out(1), "o_quant": Out(1),
            "o_i32": Out(data.ArrayLayout(signed(32), L)),
            "o_i8": Out(data.ArrayLayout(signed(8), L)),
        })

    @property
    def latency(self):
        return self.config.vxm_latency

    def elaborate(self, platform):
        cfg = self.config
        P, G = cfg.vxm_passes, cfg.vxm_group
        p = self.i_params
        m = Module()

        def lanes_of_pass(array, bits):
            """The G lanes of this pass, as signed(bits) values."""
            flat = array.as_value()
            group = flat if P == 1 else flat.word_select(self.i_pass, bits * G)
            return [group[bits * j:bits * (j + 1)].as_signed() for j in range(G)]

        data_in = lanes_of_pass(self.i_data, 32)
        bias_in = lanes_of_pass(p.bias, 32)
        mult_in = lanes_of_pass(p.multiplier, 32)
        shift_in = lanes_of_pass(p.shift, 8)

        v = [Signal(name=f"valid{i}") for i in range(3)]
        q = [Signal(name=f"quant{i}") for i in range(4)]
        k = [Signal(cfg.vxm_pass_bits, name=f"pass{i}") for i in range(3)]   # pass of each stage
        m.d.sync += [v[0].eq(self.i_valid), q[0].eq(self.i_quant), k[0].eq(self.i_pass)]
        m.d.sync += [v[i].eq(v[i - 1]) for i in (1, 2)]
        m.d.sync += [k[i].eq(k[i - 1]) for i in (1, 2)]
        m.d.sync += [q[i].eq(q[i - 1]) for i in range(1, 4)]
        zp = [Signal(signed(8), name=f"zp{i}") for i in range(3)]
        lo = [Signal(signed(8), name=f"amin{i}") for i in range(3)]
        hi = [Signal(signed(8), name=f"amax{i}") for i in range(3)]
        m.d.sync += [zp[0].eq(p.zero_point), lo[0].eq(p.act_min), hi[0].eq(p.act_max)]
        for i in (1, 2):
            m.d.sync += [zp[i].eq(zp[i - 1]), lo[i].eq(lo[i - 1]), hi[i].eq(hi[i - 1])]
        # the vector is complete when its last pass leaves stage 4
        m.d.sync += self.o_valid.eq(v[2] & (k[2] == P - 1))
        m.d.comb += self.o_quant.eq(q[3])
        # the row's rounding, through the stages with the data (ROUNDING: 0 single, 1 double)
        single = [Signal(name=f"single{i}") for i in range(3)]
        m.d.sync += single[0].eq(p.rounding == ROUNDING["single"])
        m.d.sync += [single[i].eq(single[i - 1]) for i in (1, 2)]
        for j in range(G):
            # stage 1: x = acc + bias (wraps); the multiplier's operand: x itself (single) or
            # x << left (double, wraps); the shift amounts of both roundings
            x = Signal(signed(32), name=f"x{j}")
            xs = Signal(signed(32), name=f"xs{j}")
            mult1 = Signal(signed(32), name=f"mult{j}")
            right = [Signal(5, name=f"right{j}_{i}") for i in range(3)]
            total = [Signal(6, name=f"total{j}_{i}") for i in range(2)]   # single: t = 31 - shift
            half = [Signal(6, name=f"half{j}_{i}") for i in range(2)]     # t - 1
            shift = shift_in[j]
            left = Mux(shift > 0, shift, 0)[:5]
            biased = (data_in[j] + bias_in[j])[:32]
            m.d.sync += [
                x.eq(biased),
                xs.eq(Mux(p.rounding == ROUNDING["single"], biased, (biased << left)[:32])),
                mult1.eq(mult_in[j]),
                right[0].eq(Mux(shift < 0, -shift, 0)[:5]),
                total[0].eq(31 - shift), half[0].eq(30 - shift),
            ]
            m.d.sync += [right[i].eq(right[i - 1]) for i in (1, 2)]
            m.d.sync += [total[1].eq(total[0]), half[1].eq(half[0])]
            # stage 2: the exact 64-bit product (shared by both roundings), and the one case
            # SRDHM saturates
            prod = Signal(signed(64), name=f"prod{j}")
            ovf = Signal(name=f"ovf{j}")
            m.d.sync += [prod.eq(xs * mult1),
                         ovf.eq((xs == -(1 << 31)) & (mult1 == -(1 << 31)))]
            # stage 3, double: round(prod / 2**31), ties away from zero (nudge, C division)
            t = Signal(signed(66), name=f"t{j}")
            m.d.comb += t.eq(prod + Mux(prod >= 0, 1 << 30, 1 - (1 << 30)))
            quotient = (t >> 31) + ((t < 0) & (t[:31] != 0))
            high = Mux(ovf, (1 << 31) - 1, quotient[:32].as_signed())
            # stage 3, single: (prod + 2**(t-1)) >> t, t = 31 - shift in [1, 62], saturated to
            # 34 bits (anything beyond clamps the same way after the zero point)
            nudged = Signal(signed(66), name=f"nudged{j}")
            m.d.comb += nudged.eq(prod + (Const(1, 63) << half[1])[:63])
            scaled = Signal(signed(66), name=f"scaled{j}")
            m.d.comb += scaled.eq(nudged >> total[1])
            lim = 1 << 33
            sat = Mux(scaled < -lim, -lim, Mux(scaled > lim - 1, lim - 1, scaled))
            stage3 = Signal(signed(34), name=f"stage3_{j}")
            m.d.sync += stage3.eq(Mux(single[1], sat, high))
            # stage 4: double's rounding right shift (single passes), zero point, clamp, into
            # this pass's lanes
            mask = Signal(32, name=f"mask{j}")
            m.d.comb += mask.eq((Const(1, 33) << right[2]) - 1)
            remainder = stage3[:32] & mask
            threshold = (mask >> 1) + (stage3 < 0)
            shifted = Mux(single[2], stage3, (stage3 >> right[2]) + (remainder > threshold))
            rounded = Signal(signed(36), name=f"rounded{j}")
            m.d.comb += rounded.eq(shifted + zp[2])
            clamped = Mux(rounded < lo[2], lo[2], Mux(rounded > hi[2], hi[2], rounded))
            x2, x3 = Signal(signed(32), name=f"x{j}_2"), Signal(signed(32), name=f"x{j}_3")
            m.d.sync += [x2.eq(x), x3.eq(x2)]
            for g in range(P):
                with m.If(k[2] == g):
                    m.d.sync += [self.o_i32[g * G + j].eq(x3),
                                 self.o_i8[g * G + j].eq(clamped[:8])]
        return m
