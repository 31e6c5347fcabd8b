from amaranth import *

from lpu.contract.config import SERIAL_LANE_CYCLES
from lpu.contract.isa import ROUNDING

from .vector_unit import VectorUnit

__all__ = ["SerialVectorUnit", "vector_unit"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

def vector_unit(config, tag_shape=8):
    """The configuration's vector unit: bit-serial (``config.vxm_serial``) or pipelined."""
    return (SerialVectorUnit if config.vxm_serial else VectorUnit)(config, tag_shape)


# what the engine does in a cycle (one lane at a time)
IDLE, SHL, MUL, SHIFT, ROUND1, RDB, ROUND2, OUT = range(8)


class SerialVectorUnit(VectorUnit):
    """The vector unit of :class:`~rtl.vector_unit.VectorUnit`'s ports and numerics, one lane
    at a time, bit by bit: for an FPGA without a DSP block to spare for the requantising
    multiply, nor the logic for its 13-stage pipeline (the iCEBreaker's UP5K). Selected by
    ``vxm_passes = lanes * SERIAL_LANE_CYCLES`` (``LpuConfig.vxm_serial``).

    A vector is presented for ``vxm_passes`` cycles; on pass ``j * SERIAL_LANE_CYCLES`` the
    unit takes in lane ``j`` (``o_i32[j] = acc + bias`` from the next cycle on) and one
    engine works it out within the lane's ``SERIAL_LANE_CYCLES`` passes, one step a cycle:

    * ``SHL`` (double rounding): ``x << left``, one bit a cycle (wraps, as the model's);
    * ``MUL``: the exact 64-bit ``x * multiplier``, shift-and-add over 32 cycles (the last
      subtracts: the top bit of ``x`` weighs ``-2**31``), in ``{hi, lo}``;
    * ``SHIFT``: the product moved so that ``hi`` holds it divided by ``2**t`` and ``lo``'s
      top bit is the next bit down (``t = 31 - shift`` single, ``31`` double): left
      ``32 - t`` or right ``t - 32`` bits, one a cycle (a left shift that would carry a bit
      past 33 bits marks the value as beyond any clamp);
    * ``ROUND1``: ``hi + that bit``: single rounding's ``(p + 2**(t-1)) >> t``; double's
      ``SaturatingRoundingDoublingHighMul``, which is exactly ``(p >> 31) + bit 30 of p``
      (``INT32_MAX`` in its one overflow case);
    * ``RDB``, ``ROUND2`` (double): ``RoundingDivideByPOT`` by ``right``: shifted right one
      bit a cycle into ``lo``, then plus 1 where the bits shifted out are past half (or,
      for a negative value, past half and not exactly it);
    * ``OUT``: saturated to 10 bits (beyond them every clamp gives the same), plus the zero
      point, clamped into ``o_i8[j]``.

    At most 97 cycles a lane (double, left and right shifts of 30 and 31), so each lane's
    result is in place before the next lane is taken in: ``o_valid`` (the outputs are whole)
    the cycle after the last pass, ``latency = vxm_passes``.
    """

    def elaborate(self, platform):
        cfg = self.config
        L, P, N = cfg.lanes, cfg.vxm_passes, SERIAL_LANE_CYCLES
        assert P == L * N
        p = self.i_params
        m = Module()

        cb = N.bit_length() - 1
        lane_in = self.i_pass[cb:]
        load = self.i_valid & (self.i_pass[:cb] == 0)

        def pick(array, bits):
            """Lane ``lane_in`` of a per-lane array, as signed(bits)."""
            return array.as_value().word_select(lane_in, bits).as_signed()

        # the outputs: whole when the vector's last pass has been presented
        m.d.sync += [self.o_valid.eq(self.i_valid & (self.i_pass == P - 1)),
                     self.o_quant.eq(self.i_quant), self.o_tag.eq(self.i_tag)]

        phase = Signal(range(8), name="phase")
        lane = Signal(range(L), name="lane")
        hi = Signal(signed(34), name="hi")          # the value's high part (sign-extended)
        lo = Signal(32, name="lo")                  # x, then the product's low bits, then
        mult = Signal(signed(32), name="mult")      # the bits shifted out
        single = Signal(name="single")
        left, right = Signal(5, name="left"), Signal(5, name="right")
        shift_n, shift_left = Signal(6, name="shift_n"), Signal(name="shift_left")
        step = Signal(5, name="step")
        ovf, neg, lost = Signal(name="ovf"), Signal(name="neg"), Signal(name="lost")
        zp, amin, amax = (Signal(signed(8), name=n) for n in ("zp", "amin", "amax"))

        # the one adder, one carry chain: hi + operand + carry (MUL: the multiplier, or its
        # complement plus 1 on the last step; ROUND1: the bit below, and -1 for SRDHM's
        # overflow (2**31 - 1 from 2**31); ROUND2: the round-up bit; otherwise hi itself)
        mul, rnd1, rnd2 = phase == MUL, phase == ROUND1, phase == ROUND2
        last = step == 31
        bit, half = lo[0], lo[31]
        up = half & (~hi[-1] | (lo[:31] != 0))      # RoundingDivideByPOT's round-up
        operand = Signal(signed(34), name="operand")
        carry = Signal(name="carry")
        total = Signal(signed(34), name="total")
        m.d.comb += [
            operand.eq(Mux(mul & bit, Mux(last, ~mult, mult), Mux(rnd1 & ~single & ovf, -1, 0))),
            carry.eq(Mux(mul, bit & last, Mux(rnd1, half, rnd2 & up))),
            total.eq((Cat(C(1, 1), hi) + Cat(carry, operand))[1:35]),
        ]
        # {hi, lo} moves one bit a cycle: left (SHIFT up), or right through the adder (MUL's
        # step; SHIFT down and RDB, where the adder passes hi); hi takes the adder's sum in
        # ROUND1 and ROUND2. Every source of hi and lo is one of these few (their logic was
        # most of the unit's with an assignment per step)
        left_step = (phase == SHIFT) & shift_left
        right_step = mul | ((phase == SHIFT) & ~shift_left) | (phase == RDB)
        with m.If(left_step):
            m.d.sync += [hi.eq(Cat(lo[31], total[:33])), lo.eq(lo << 1)]
            with m.If(hi[32] != hi[31]):            # would leave 33 bits: beyond any clamp
                m.d.sync += lost.eq(1)
        with m.Elif(right_step):
            m.d.sync += [hi.eq(total >> 1), lo.eq(Cat(lo[1:], total[0]))]
        with m.Elif(rnd1 | rnd2):
            m.d.sync += hi.eq(total)
        with m.If(phase == SHL):
            m.d.sync += lo.eq(lo << 1)
        with m.If(rnd1):
            m.d.sync += lo.eq(0)                    # RDB's bits shifted out go in here

        with m.Switch(phase):
            with m.Case(SHL):                       # x << left, one bit a cycle
                m.d.sync += left.eq(left - 1)
                with m.If(left == 1):
                    m.d.sync += phase.eq(MUL)
            with m.Case(MUL):                       # {hi, lo} = (hi + b*mult) : lo >> 1
                m.d.sync += step.eq(step + 1)
                with m.If(step == 0):
                    m.d.sync += ovf.eq((lo == (1 << 31)) & (mult == INT32_MIN))
                with m.If(last):
                    m.d.sync += [neg.eq(total[-1]),
                                 phase.eq(Mux(shift_n == 0, ROUND1, SHIFT))]
            with m.Case(SHIFT):                     # divided by 2**t, the next bit in lo[31]
                m.d.sync += shift_n.eq(shift_n - 1)
                with m.If(shift_n == 1):
                    m.d.sync += phase.eq(ROUND1)
            with m.Case(ROUND1):                    # + the bit below; SRDHM's overflow
                m.d.sync += phase.eq(Mux(single, OUT, Mux(right == 0, ROUND2, RDB)))
            with m.Case(RDB):                       # double: >> right, the bits into lo
                m.d.sync += right.eq(right - 1)
                with m.If(right == 1):
                    m.d.sync += phase.eq(ROUND2)
            with m.Case(ROUND2):
                m.d.sync += phase.eq(OUT)
            with m.Case(OUT):                       # 10 bits, + zero point, clamp
                fits = hi[9:].all() | ~hi[9:].any()
                sat = Mux(hi[-1], -512, 511)
                v10 = Mux(lost, Mux(neg, -512, 511), Mux(fits, hi[:10].as_signed(), sat))
                v = Signal(signed(11), name="v")
                m.d.comb += v.eq(v10 + zp)
                m.d.sync += [self.o_i8[lane].eq(Mux(v < amin, amin, Mux(v > amax, amax, v))),
                             phase.eq(IDLE)]

        # taking in a lane (any engine step in flight is over by then)
        with m.If(load):
            shift = pick(p.shift, 8)
            single_in = pick(p.rounding, 8) == ROUNDING["single"]
            left_in = Mux(shift > 0, shift, 0)[:5]
            t = Mux(single_in, (31 - shift)[:6], 31)
            d = Signal(signed(8), name="d")         # 32 - t: left (>= 0) or right
            m.d.comb += d.eq(32 - t)
            x = (pick(self.i_data, 32) + pick(p.bias, 32))[:32]
            m.d.sync += [
                self.o_i32[lane_in].eq(x), lane.eq(lane_in),
                hi.eq(0), lo.eq(x), mult.eq(pick(p.multiplier, 32)), single.eq(single_in),
                left.eq(left_in), right.eq(Mux(shift < 0, -shift, 0)[:5]),
                shift_left.eq(d >= 0), shift_n.eq(Mux(d >= 0, d, -d)[:6]),
                step.eq(0), lost.eq(0),
                zp.eq(p.zero_point), amin.eq(p.act_min), amax.eq(p.act_max),
                phase.eq(Mux(~single_in & (left_in != 0), SHL, MUL)),
            ]
        return m
