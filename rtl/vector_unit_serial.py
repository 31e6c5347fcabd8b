from amaranth import *

from amaranth.lib.wiring import In

from lpu.contract.config import PARAM_WORD_BITS, SERIAL_LANE_CYCLES
from lpu.contract.isa import ROUNDING, param_fields, param_offset

from .primitives import single_port_memory
from .vector_unit import VectorUnit

__all__ = ["SerialVectorUnit", "vector_unit"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

def vector_unit(config, tag_shape=8):
    """The configuration's vector unit: bit-serial (``config.vxm_serial``) or pipelined."""
    return (SerialVectorUnit if config.vxm_serial else VectorUnit)(config, tag_shape)


# what the engine does in a cycle (one lane at a time)
IDLE, FETCH, SHL, MUL, SHIFT, ROUND1, RDB, ROUND2, OUT = range(9)


class SerialVectorUnit(VectorUnit):
    """The vector unit of :class:`~rtl.vector_unit.VectorUnit`'s numerics, one lane at a
    time, bit by bit: for an FPGA without a DSP block to spare for the requantising
    multiply, nor the logic for its 13-stage pipeline (the iCEBreaker's UP5K). Selected by
    ``vxm_passes = lanes * SERIAL_LANE_CYCLES`` (``LpuConfig.vxm_serial``).

    Its parameters are not a row presented with the vector but rows of its own memory, of
    ``PARAM_WORD_BITS`` words (``LpuConfig.param_part_bits``): ``param_we`` writes
    ``param_wdata`` as part ``param_part`` of row ``param_row`` at the end of the cycle. It
    is single-ported (on the UP5K two SPRAMs, :func:`~rtl.primitives.single_port_memory`,
    instead of a row of flip-flops, 340 logic cells), so writes must come while no vector is
    in the unit (the tile's host port writes only while idle). A vector comes with the row
    of its parameters, ``i_prow``.

    A vector is presented for ``vxm_passes`` cycles; on pass ``j * SERIAL_LANE_CYCLES`` the
    unit takes in lane ``j`` of ``i_data`` and one engine works it out within the lane's
    ``SERIAL_LANE_CYCLES`` passes, one step a cycle:

    * ``FETCH``: the lane's parameters, a word a cycle: its bias, added to the accumulator
      on the engine's adder (``o_i32[j] = acc + bias``), its multiplier, its rounding, its
      shift, then the row's zero point and clamp (6 cycles);
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

    At most 103 cycles a lane (double, left and right shifts of 30 and 31), so each lane's
    result is in place before the next lane is taken in: ``o_valid`` (the outputs are whole)
    the cycle after the last pass, ``latency = vxm_passes``.
    """

    @staticmethod
    def ports(config, tag_shape):
        ports = VectorUnit.ports(config, tag_shape)
        del ports["i_params"]
        rows = range(config.param_rows)
        return {**ports, "i_prow": In(rows),
                "param_we": In(1), "param_row": In(rows),
                "param_part": In(range(config.param_parts)), "param_wdata": In(PARAM_WORD_BITS)}

    def elaborate(self, platform):
        cfg = self.config
        L, P, N = cfg.lanes, cfg.vxm_passes, SERIAL_LANE_CYCLES
        assert P == L * N
        m = Module()

        cb = N.bit_length() - 1
        lane_in = self.i_pass[cb:]
        load = self.i_valid & (self.i_pass[:cb] == 0)

        # the outputs: whole when the vector's last pass has been presented
        m.d.sync += [self.o_valid.eq(self.i_valid & (self.i_pass == P - 1)),
                     self.o_tag.eq(self.i_tag)]

        phase = Signal(range(9), name="phase")
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

        # ---- the parameter memory: row r, part k at address {r, k} ------------------------
        W = PARAM_WORD_BITS
        kb = max(1, (cfg.param_parts - 1).bit_length())
        mem = single_port_memory(m, W, cfg.param_rows << kb, "params", platform)
        word = Signal(kb, name="word")              # the part FETCH reads

        bits = {name: b for name, b, _ in param_fields(L)}
        wb = W.bit_length() - 1                     # W = 2**wb

        def where(name):
            """The part, and the byte in it, where the lane's ``name`` is."""
            off = Const(param_offset(L, name)) + lane * bits[name]      # in bits
            return off[wb:], off[3:wb]
        assert all(param_offset(L, f) % 8 == 0 for f in ("shift", "zero_point", "rounding"))
        zp_word, zp_byte = divmod(param_offset(L, "zero_point") // 8, W // 8)
        assert zp_byte + 2 < W // 8                 # zero point and clamp: one word
        rounding_byte, shift_byte = where("rounding")[1], where("shift")[1]
        with m.Switch(step):
            for k, name in enumerate(("bias", "multiplier", "rounding", "shift")):
                with m.Case(k):
                    m.d.comb += word.eq(where(name)[0])
            with m.Default():
                m.d.comb += word.eq(zp_word)
        m.d.comb += [mem.we.eq(self.param_we), mem.wdata.eq(self.param_wdata),
                     mem.addr.eq(Mux(self.param_we, Cat(self.param_part[:kb], self.param_row),
                                     Cat(word, self.i_prow)))]
        got = mem.rdata                             # the word of the step before

        def byte(value, index):
            return value.word_select(index, 8).as_signed()

        # the one adder, one carry chain: hi + operand + carry (FETCH: the bias, in mult;
        # MUL: the multiplier, or its complement plus 1 on the last step; ROUND1: the bit
        # below, and -1 for SRDHM's overflow (2**31 - 1 from 2**31); ROUND2: the round-up
        # bit; otherwise hi itself)
        fetch, mul, rnd1, rnd2 = phase == FETCH, phase == MUL, phase == ROUND1, phase == ROUND2
        add_bias = fetch & (step == 2)
        last = step == 31
        bit, half = lo[0], lo[31]
        up = half & (~hi[-1] | (lo[:31] != 0))      # RoundingDivideByPOT's round-up
        operand = Signal(signed(34), name="operand")
        carry = Signal(name="carry")
        total = Signal(signed(34), name="total")
        m.d.comb += [
            operand.eq(Mux((mul & bit) | add_bias, Mux(last, ~mult, mult),
                           Mux(rnd1 & ~single & ovf, -1, 0))),
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
            with m.Case(FETCH):                     # the word read on the step before
                m.d.sync += step.eq(step + 1)
                with m.Switch(step):
                    with m.Case(1):                 # the bias
                        m.d.sync += mult.eq(got)
                    with m.Case(2):                 # the multiplier; x = acc + bias
                        m.d.sync += [mult.eq(got), hi.eq(0), lo.eq(total[:32]),
                                     self.o_i32[lane].eq(total[:32])]
                    with m.Case(3):                 # the rounding
                        m.d.sync += single.eq(byte(got, rounding_byte) == ROUNDING["single"])
                    with m.Case(4):                 # the shift
                        shift = byte(got, shift_byte)
                        t = Mux(single, (31 - shift)[:6], 31)
                        d = Signal(signed(8), name="d")     # 32 - t: left (>= 0) or right
                        m.d.comb += d.eq(32 - t)
                        m.d.sync += [left.eq(Mux(shift > 0, shift, 0)[:5]),
                                     right.eq(Mux(shift < 0, -shift, 0)[:5]),
                                     shift_left.eq(d >= 0), shift_n.eq(Mux(d >= 0, d, -d)[:6])]
                    with m.Case(5):                 # the zero point and the clamp
                        m.d.sync += [zp.eq(byte(got, zp_byte)), amin.eq(byte(got, zp_byte + 1)),
                                     amax.eq(byte(got, zp_byte + 2)), step.eq(0),
                                     phase.eq(Mux(~single & (left != 0), SHL, MUL))]
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

        # taking in a lane (any engine step in flight is over by then): its accumulator into
        # hi, for FETCH to add the bias to
        with m.If(load):
            acc = self.i_data.as_value().word_select(lane_in, 32).as_signed()
            m.d.sync += [lane.eq(lane_in), hi.eq(acc), step.eq(0), lost.eq(0), phase.eq(FETCH)]
        return m
