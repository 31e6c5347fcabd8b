"""What the tile asks of an FPGA's primitives by hand, where inference would not give it:
DSP blocks with their own pipeline registers, and flip-flops synthesis must not merge."""

from amaranth import *

__all__ = ["Family", "registered_product", "replicated_register"]


class Family:
    """An elaboration target that is not a board: what :func:`registered_product` asks of the
    ``platform`` it is given (``family``, as Amaranth's Lattice platforms say it). The netlist
    flow (``lpu.tools.netlist``) elaborates with ``Family("ecp5")`` so that the netlist it
    simulates holds the primitives the bitstream does."""

    def __init__(self, family):
        self.family = family

def _ecp5_mult18x18d(m, a, b, name):
    """``a * b`` (each at most 18 bits, signed) in one ``MULT18X18D`` with its input registers
    and its output register on (``REG_INPUTA/B_CLK``, ``REG_OUTPUT_CLK`` = ``CLK0``), so both
    register boundaries sit inside the DSP block and the fabric reaches it only from and to a
    register (nextpnr times it as ``MULT18X18D_REGS_ALL``). Its registers have no reset
    (``RST0`` low), like the fabric version's (``reset_less``)."""
    width = len(a) + len(b)
    sa, sb = Signal(18, name=f"{name}_a"), Signal(18, name=f"{name}_b")
    p = Signal(36, name=f"{name}_p")
    m.d.comb += [sa.eq(a.as_signed()), sb.eq(b.as_signed())]    # sign-extended to 18 bits
    regs = {f"p_REG_{r}_{s}": (f"{s}0" if s != "CLK" else "CLK0")
            for r in ("INPUTA", "INPUTB", "OUTPUT") for s in ("CLK", "CE", "RST")}
    m.submodules[name] = Instance(
        "MULT18X18D", **regs,
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE", p_GSR="DISABLED",
        p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
        **{f"i_A{i}": sa[i] for i in range(18)}, **{f"i_B{i}": sb[i] for i in range(18)},
        **{f"i_C{i}": 0 for i in range(18)},
        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
        i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=0,
        **{f"o_P{i}": p[i] for i in range(36)})
    return p[:width].as_signed()

def registered_product(m, a, b, name, platform=None):
    """``a * b`` two cycles later: the operands registered, then their product (a DSP block's
    input and output registers). On an ECP5 (``platform.family``) one ``MULT18X18D`` holds
    both registers (operands of at most 18 bits); elsewhere they are flip-flops that synthesis
    places where it likes (the same cycles, the same values)."""
    if getattr(platform, "family", None) == "ecp5" and max(len(a), len(b)) <= 18:
        return _ecp5_mult18x18d(m, a, b, name)
    ra = Signal(a.shape(), name=f"{name}_a", reset_less=True)
    rb = Signal(b.shape(), name=f"{name}_b", reset_less=True)
    p = Signal(signed(len(a) + len(b)), name=f"{name}_p", reset_less=True)
    m.d.sync += [ra.eq(a), rb.eq(b), p.eq(ra * rb)]
    return p


def replicated_register(m, value, copies, name, platform=None):
    """``copies`` flip-flops each holding ``value`` one cycle later (reset to 0 with the
    domain), one per group of the loads of a wide select, so that no single flip-flop drives
    them all from wherever the placer put it (the ULX3S's critical path at 63.2 MHz: one
    select routed 10.4 ns across the chip to 256 multiplexers). Yosys merges identical
    flip-flops (``opt_merge``, with or without ``keep``), so on an ECP5 each copy is a
    hand-instantiated ``TRELLIS_FF`` in exactly the configuration synthesis gives a
    synchronously reset register (``LSR`` = the domain's reset, ``SRMODE`` ``LSR_OVER_CE``),
    which no pass merges; elsewhere, plain registers (the same values on every cycle)."""
    out = []
    for i in range(copies):
        q = Signal(name=f"{name}_{i}")
        if getattr(platform, "family", None) == "ecp5":
            m.submodules[f"{name}_{i}"] = Instance(
                "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR",
                p_REGSET="RESET", p_SRMODE="LSR_OVER_CE",
                i_CLK=ClockSignal("sync"), i_LSR=ResetSignal("sync"), i_DI=value, o_Q=q)
        else:
            m.d.sync += q.eq(value)
        out.append(q)
    return out
