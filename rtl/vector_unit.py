from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from lpu.contract.isa import ROUNDING, param_fields

from .delay import delay
from .primitives import registered_product, replicated_register

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
    with its parameters (``i_params``, a row of :func:`vxm_params_layout`) and a tag it
    carries to the result (``i_tag``: where the result goes, and which of the two); each pass requantises ``vxm_group`` lanes (pass ``k``: lanes ``k*G`` to
    ``k*G + G - 1``), so one ``32 x 32`` multiplier serves ``vxm_passes`` lanes. ``latency``
    cycles after pass 0 (``o_valid``):

    * ``o_i32 = acc + bias`` (wrapping), and
    * ``o_i8 = clamp(MultiplyByQuantizedMultiplier(acc + bias, multiplier, shift)
      + zero_point, act_min, act_max)`` in the row's rounding (``rounding``: single or
      double, ``lpu.contract.isa.ROUNDING``), exactly as ``model.vxm.requantize``.

    An entry register, fourteen register stages, each with at most one carry chain, barrel
    shifter or DSP multiply between registers (so the tile keeps a fast clock; with
    ``read_registers`` the DSP blocks' products pass one more register, after stage 4, and
    the stages from 5 on are each a cycle later; and stage 13's sum is saturated to 9 bits
    in one more register, 13a, so that 14 and 15 are a cycle later again), then the output
    lanes:

    0. the entry register: this pass's lanes of the vector and its parameters (the
       accumulator and parameter memories sit far from the unit on a large FPGA: their
       block RAMs' outputs were routed straight into stage 1's adder, the ULX3S's critical
       path at 68.6 MHz, 9.2 of its 14.6 ns routing)
    1. ``x = acc + bias`` (wraps); the shift amounts of both roundings
    2. the multiplier's operand: ``x`` (single) or ``x << left`` (double, wraps)
    3. the operands registered again (a DSP block's input registers: routing only)
    4. four 17 x 17 partial products of the exact 32 x 32 multiply (one DSP block each, its
       output register; :func:`rtl.primitives.registered_product`)
    5-7. their sum, the 64-bit product, in three adds
    8. plus the rounding's addend: ``2**(t-1)`` (single, ``t = 31 - shift``) or double's
       ``+-2**30`` (one adder for both)
    9. shifted right by ``t`` (single) or 31 (double), with double's round-toward-zero
       correction bit beside it
    10. plus the correction
    11. single: saturated to 34 bits; double: SRDHM's one overflow case
    12. double's rounding right shift: the shifted value and its round-up bit (single passes)
    13. plus the round-up bit and the zero point (13a, with ``read_registers``: saturated to
        9 bits, which compare with the int8 bounds as the 36 do)
    14. compared with the clamp's bounds (the compares registered, not the clamp's
        multiplexers after them: the ULX3S's critical path at 78.9 MHz, 12.7 ns)
    15. clamped into this pass's output lanes.
    """

    def __init__(self, config, tag_shape=8):
        self.config = config
        super().__init__(self.ports(config, tag_shape))

    @staticmethod
    def ports(config, tag_shape):
        """The unit's signature members."""
        L = config.lanes
        return {
            "i_valid": In(1), "i_pass": In(config.vxm_pass_bits),
            "i_tag": In(tag_shape), "o_tag": Out(tag_shape),
            "i_data": In(data.ArrayLayout(signed(32), L)),
            "i_params": In(vxm_params_layout(L)),
            "o_valid": Out(1),
            "o_i32": Out(data.ArrayLayout(signed(32), L)),
            "o_i8": Out(data.ArrayLayout(signed(8), L)),
        }

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

        N = self.latency - P               # register stages before the output lanes
        # with ``read_registers``, the DSP blocks' products pass a register in the fabric
        # before their first add (from a block placed across the chip, the route alone took
        # 9.6 of the ULX3S 8-lane tile's 12.4 ns at 100 MHz): every stage from 5 on is
        # ``d`` later
        d = cfg.read_registers

        def stage(value, name, i=1):
            """``value`` registered ``i`` times: the same thing ``i`` stages later."""
            return delay(m, value, i, name=name)

        def entry(array, bits, name):
            """0: this pass's lanes of ``array`` through the entry register."""
            return [stage(v, f"in_{name}{j}") for j, v in enumerate(lanes_of_pass(array, bits))]

        data_in, bias_in = entry(self.i_data, 32, "data"), entry(p.bias, 32, "bias")
        mult_in, shift_in = entry(p.multiplier, 32, "mult"), entry(p.shift, 8, "shift")
        rounding_in = entry(p.rounding, 8, "rounding")      # the row's, one copy per lane

        # carried beside the data: pass number, mode, the row's shared parameters
        valid = stage(self.i_valid, "valid", N)
        k = stage(self.i_pass, "pass", N)
        m.d.comb += self.o_tag.eq(stage(Value.cast(self.i_tag), "tag", N + 1))
        zp = stage(p.zero_point, "zp", N - 2 - d)
        # the clamp's bounds, compared on stage 14 and chosen on 15: the last stage of each in
        # copies, one per lane (``rtl.primitives.replicated_register``: one flip-flop read by
        # every lane's compare was the ULX3S 8-lane tile's worst path at 100 MHz, routed 10.1
        # of 15.6 ns), and each lane's copy the next stage on
        los = replicated_register(m, stage(p.act_min, "amin", N - 2), G, "amin_lane", platform)
        his = replicated_register(m, stage(p.act_max, "amax", N - 2), G, "amax_lane", platform)
        # the vector is complete when its last pass leaves the last stage
        m.d.sync += self.o_valid.eq(valid & (k == P - 1))
        for j in range(G):
            # the row's rounding is single: ``single[s]`` is the flag as stage ``s`` of this
            # lane sees it, from the lane's own copy (a chain per lane: no flip-flop drives
            # more than one lane)
            single = [None, stage(rounding_in[j] == ROUNDING["single"], f"single{j}_1")]
            for s in range(2, 12 + d):
                single.append(stage(single[-1], f"single{j}_{s}"))
            shift = shift_in[j]
            # 1: x = acc + bias; the shift amounts (double: left, right; single: t, t - 1)
            x = stage((data_in[j] + bias_in[j])[:32].as_signed(), f"x{j}")
            mult = stage(mult_in[j], f"mult{j}", 2)
            left = stage(Mux(shift > 0, shift, 0)[:5], f"left{j}")
            right10 = stage(Mux(shift < 0, -shift, 0)[:5], f"right{j}", 10 + d)
            right = stage(right10, f"right{j}_11")
            # stage 9's shift amount, chosen a stage ahead: the barrel shifter starts at
            # flip-flops (the rounding flag's select of it, fanned out to its 66 bits, was
            # the ULX3S's VXM path at 100 MHz, 11.8 ns)
            total = stage((31 - shift)[:6], f"total{j}", 7 + d)
            # single's addend 2**(t-1), decoded a stage ahead (its one-hot decode of t - 1
            # before the add of stage 8 was the ULX3S's 8-lane VXM path at 100 MHz, 12.1 ns)
            half = stage((Const(1, 63) << stage((30 - shift)[:6], f"half{j}", 6 + d))[:63],
                         f"addend_bit{j}")
            # 2: the multiplier's operand
            xs = stage(Mux(single[1], x, (x << left)[:32].as_signed()), f"xs{j}")
            # 3: the operands again, in the DSP blocks' input registers, and 4: four partial
            # products, the low halves zero-extended (17 x 17 signed each), in their output
            # registers (on an ECP5 both inside the MULT18X18D, so the fabric reaches a DSP
            # block only from a register and to one: the placer puts the blocks wherever the
            # MXM left them, 4 to 6 ns of routing from the VXM's logic, the ULX3S's critical
            # path at 69.2 MHz when the multiply and both routes were one cycle)
            xh, xl = xs[16:].as_signed(), Cat(xs[:16], C(0, 1)).as_signed()
            mh, ml = mult[16:].as_signed(), Cat(mult[:16], C(0, 1)).as_signed()
            hh, hl, lh, ll = [stage(registered_product(m, a, b, f"{name}{j}", platform),
                                    f"{name}{j}_f", d)
                              for name, a, b in (("hh", xh, mh), ("hl", xh, ml),
                                                 ("lh", xl, mh), ("ll", xl, ml))]
            ovf = stage((xs == -(1 << 31)) & (mult == -(1 << 31)), f"ovf{j}", 8 + d)
            # 5-7: the exact 64-bit product
            mid = stage(hl + lh, f"mid{j}")
            low = stage(stage(ll, f"ll{j}_5") + (mid << 16), f"low{j}")
            prod = stage((stage(hh, f"hh{j}_6", 2) << 32) + low, f"prod{j}")
            # 8: + the rounding's addend (single: 2**(t-1); double: ties away from zero)
            addend = Mux(single[7 + d], half,
                         Mux(prod >= 0, 1 << 30, 1 - (1 << 30)))
            n = stage((prod + addend)[:66].as_signed(), f"n{j}")
            # 9: >> t (single) or >> 31 (double); double's correction toward zero (C division)
            amount = stage(Mux(single[7 + d], total, 31), f"amount{j}")
            sh = stage(n >> amount, f"sh{j}")
            corr = stage(~single[8 + d] & (n < 0) & (n[:31] != 0), f"corr{j}")
            # 10: + the correction
            q = stage((sh + corr)[:66].as_signed(), f"q{j}")
            # 11: single saturates to 34 bits (anything beyond clamps the same way after the
            # zero point); double: SRDHM saturates INT32_MIN * INT32_MIN
            # (within 34 bits when bits 33 and up are all equal: a LUT tree, no carry chain)
            lim = 1 << 33
            fits = q[33:].all() | ~q[33:].any()
            sat = Mux(fits, q[:34].as_signed(), Mux(q[-1], -lim, lim - 1))
            high = Mux(ovf, (1 << 31) - 1, q[:32].as_signed())
            r = Signal(signed(34), name=f"r{j}")
            m.d.sync += r.eq(Mux(single[10 + d], sat, high))
            # 12: double's rounding right shift by `right` (single passes): round up when the
            # remainder ``r mod 2**right`` is past half the mask (``2**(right-1) - 1``), or past
            # one more for a negative value: when its top bit (``2**(right-1)``) is set, and
            # for a negative value one below it too. Two masks registered a stage early from
            # the shift amount (``right`` 0: both 0, no round-up), then two OR trees: no
            # compare (the remainder's two 32-bit compares were the ULX3S's critical path at
            # 88.7 MHz: eight LUTs, 11.3 ns)
            ones = ((Const(1, 33) << right10) - 1)[:32]
            below_half = stage(ones >> 1, f"below_half{j}")
            half_bit = stage(ones ^ (ones >> 1), f"half_bit{j}")
            shifted = stage(Mux(single[11 + d], r, r >> right), f"shifted{j}")
            up = stage(~single[11 + d] & (r[:32] & half_bit).any() &
                       (~r[-1] | (r[:32] & below_half).any()), f"up{j}")
            # 13: + the round-up bit + the zero point
            rounded = stage((shifted + up + zp)[:36].as_signed(), f"rounded{j}")
            # with ``read_registers``, 13a: saturated to 9 bits, which the int8 bounds compare
            # alike (bits 8 and up all equal: a LUT tree, no carry chain; the 36-bit compares
            # of ``rounded`` with the bounds were the ULX3S 8-lane tile's critical path at
            # 73.5 MHz, five LUT levels and 8.2 of 13.6 ns routing)
            if d:
                fits9 = rounded[8:].all() | ~rounded[8:].any()
                rounded = stage(Mux(fits9, rounded[:9].as_signed(),
                                    Mux(rounded[-1], -(1 << 8), (1 << 8) - 1)),
                                f"narrow{j}", d)
            # 14: compared with the clamp's bounds, and 15: clamped into this pass's lanes
            lo, hi = los[j], his[j]
            below, above = stage(rounded < lo, f"below{j}"), stage(rounded > hi, f"above{j}")
            low8 = stage(rounded[:8], f"low8_{j}")
            clamped = Mux(below, stage(lo, f"amin_o{j}"), Mux(above, stage(hi, f"amax_o{j}"), low8))
            xo = stage(x, f"x{j}_o", N - 2)         # x is two registers from the input
            for g in range(P):
                with m.If(k == g):
                    m.d.sync += [self.o_i32[g * G + j].eq(xo),
                                 self.o_i8[g * G + j].eq(clamped[:8])]
        return m
