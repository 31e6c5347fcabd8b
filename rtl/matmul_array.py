from types import SimpleNamespace

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .delay import delay
from .primitives import registered_product, registered_products
from .interfaces import activation_port_signature, vector_layout, weight_port_signature

__all__ = ["MatmulArray", "LUT_PRODUCT"]


def _selected_pairs(a, w):
    """The first half of ``a * w`` for signed 8-bit ``a`` and ``w`` from logic: the sums of
    pairs of shifted, selected copies of ``a`` (the top bit of ``w`` weighs ``-2**7``)."""
    terms = [Mux(w[i], a << i, 0) for i in range(7)] + [-Mux(w[7], a << 7, 0)]
    return [terms[i] + terms[i + 1] for i in range(0, len(terms), 2)]


def _tree_sum(terms):
    """The second half: the sum of the terms, as a balanced tree of adds."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


# ``a * w`` with no multiplier cell, so synthesis builds it from logic instead of a DSP
# block, in two halves for :func:`rtl.primitives.registered_product` to register between
# (in one cycle, its three levels of adds were the ULX3S ``tiny`` tile's critical path at
# 100 MHz, 10.2 ns)
LUT_PRODUCT = (_selected_pairs, _tree_sum)


class MatmulArray(wiring.Component):
    """Weight-stationary ``lanes x lanes`` int8 systolic array with double-buffered weights.

    PE(k, n) holds weights ``W[k][n]`` in two buffers. Activation lane ``k`` enters row ``k``
    skewed by ``k`` cycles and moves east one PE per cycle; partial sums move south one PE
    per cycle; column ``n`` is de-skewed by ``lanes-1-n`` cycles, so every lane of a result
    leaves together. Each activation carries the number of the weight buffer it uses, so an
    install (switching buffers) takes effect exactly between two activations with no idle
    cycle, while the other buffer is loaded.

    Ports
    -----
    weights : In(:func:`~rtl.interfaces.weight_port_signature`)
        Write weight row ``row`` (``W[row][0..lanes-1]``) of buffer ``buf`` at the end of
        this cycle.
    activations : In(:func:`~rtl.interfaces.activation_port_signature`)
        An activation vector entering this cycle, the buffer it uses, and a tag carried
        alongside (the accumulator address and mode, for the next stage).
    r_valid, r_data, r_tag : Out
        ``r_data[n] = sum_k a[k] * W[k][n]`` (int32) for the activation that entered
        ``latency`` cycles earlier.

    Both ports are registered on entry, and each PE registers its multiplier's operands (the
    activation and the weight of the buffer it selects) and its product before adding that to
    the partial sum from the north (a cycle of ``latency`` each, for every column alike), with
    ``read_registers`` each of the two twice (a register of the fabric's in front of the DSP
    block's operand registers, and one after its product register); the
    last ``config.lut_products`` PEs (in row order) build their product from logic
    (:data:`LUT_PRODUCT`), the others leave it to synthesis (a DSP block where the FPGA has
    one).

    Timing contract: PE(k, n) uses its weight at cycle ``t + 1 + k + n`` for an activation
    entering at ``t``, and sees a weight write of cycle ``c`` from cycle ``c + 2`` on (the
    same relation as without the entry registers). Rewriting a row
    while an activation still needs the old value is the program's responsibility; the
    golden model (``model.mxm``) computes exactly what the array does in every case.
    """

    def __init__(self, config, tag_shape=1):
        self.config = config
        L = config.lanes
        super().__init__({
            "weights": In(weight_port_signature(config)),
            "activations": In(activation_port_signature(config, tag_shape)),
            "r_valid": Out(1), "r_tag": Out(tag_shape),
            "r_data": Out(vector_layout(L, 32)),
        })

    @property
    def latency(self):
        return self.config.mxm_latency

    def elaborate(self, platform):
        L = self.config.lanes
        pipe = self.config.read_registers
        m = Module()
        # partial sums: |sum of L products| <= L * 2**14, so 16 + log2(L) + 1 bits suffice
        psum_shape = signed(16 + (L - 1).bit_length() + 1)
        a_east = [[None] * (L + 1) for _ in range(L)]
        s_east = [[None] * (L + 1) for _ in range(L)]
        # both ports registered on entry (an SRAM word reaches no multiplier in the cycle it
        # is read): weights and activations alike, so their relative timing is unchanged
        w = self._registered(m, self.weights, ("valid", "row", "buf", "data"))
        a = self._registered(m, self.activations, ("valid", "data", "buf"))
        for k in range(L):
            a_east[k][0] = delay(m, a.data[k], k, name=f"skew_a{k}")
            s_east[k][0] = delay(m, a.buf, k, name=f"skew_s{k}")
        operands = {}               # PE (k, n): its activation and its selected weight
        for k in range(L):
            row_write = w.valid & (w.row == k)
            for n in range(L):
                w0 = Signal(signed(8), name=f"w0_{k}_{n}")
                w1 = Signal(signed(8), name=f"w1_{k}_{n}")
                with m.If(row_write & (w.buf == 0)):
                    m.d.sync += w0.eq(w.data[n])
                with m.If(row_write & (w.buf == 1)):
                    m.d.sync += w1.eq(w.data[n])
                # with read_registers, both through a register of the fabric's first
                # (``pipe``), so that a DSP block's pins are reached from flip-flops only
                operands[k, n] = (
                    delay(m, a_east[k][n], pipe, f"oa_{k}_{n}", reset_less=True),
                    delay(m, Mux(s_east[k][n], w1, w0), pipe, f"ow_{k}_{n}", reset_less=True))
                if n + 1 < L:           # the last column passes nothing east
                    a_reg = Signal(signed(8), name=f"a_{k}_{n}")
                    s_reg = Signal(name=f"s_{k}_{n}")
                    m.d.sync += [a_reg.eq(a_east[k][n]), s_reg.eq(s_east[k][n])]
                    a_east[k][n + 1] = a_reg
                    s_east[k][n + 1] = s_reg
        # each PE's multiplier operands registered (the activation and the weight of the
        # buffer it selects), and its product, so a DSP block has a flip-flop on each side
        # (on an ECP5 or an iCE40, its own: ``rtl.primitives.registered_products``)
        pes = list(operands)                        # in row order
        dsp = pes[:L * L - self.config.lut_products]
        products = dict(zip(dsp, registered_products(m, [operands[pe] for pe in dsp],
                                                     [f"m_{k}_{n}" for k, n in dsp], platform)))
        for k, n in pes[len(dsp):]:
            products[k, n] = registered_product(m, *operands[k, n], f"m_{k}_{n}", platform,
                                                halves=LUT_PRODUCT)
        p_south = [Const(0, psum_shape)] * L
        for k, n in pes:
            p_reg = Signal(psum_shape, name=f"p_{k}_{n}")
            # with read_registers, the product through a register of the fabric's before
            # the column's adder (``pipe``)
            product = delay(m, products[k, n], pipe, f"mq_{k}_{n}", reset_less=True)
            m.d.sync += p_reg.eq(p_south[n] + product)
            p_south[n] = p_reg
        for n in range(L):
            m.d.comb += self.r_data[n].eq(delay(m, p_south[n], L - 1 - n, name=f"deskew{n}"))
        m.d.comb += [
            self.r_valid.eq(delay(m, a.valid, self.latency - 1, name="valid")),
            self.r_tag.eq(delay(m, self.activations.tag.as_value(), self.latency, name="tag")),
        ]
        return m

    @staticmethod
    def _registered(m, port, names):
        """The members ``names`` of ``port``, each through one register."""
        return SimpleNamespace(**{name: delay(m, getattr(port, name), 1, name=f"in_{name}")
                                  for name in names})
