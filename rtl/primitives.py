"""What the tile asks of an FPGA's primitives by hand, where inference would not give it:
DSP blocks with their own pipeline registers, flip-flops synthesis must not merge,
read-first block RAM ports without logic, and the UP5K's single-port RAMs."""

from types import SimpleNamespace

from amaranth import *

__all__ = ["Family", "registered_product", "registered_products", "replicated_register",
           "read_first_port", "falling_edge_reads", "falling_edge_read_port",
           "single_port_memory"]


class Family:
    """An elaboration target that is not a board: what :func:`registered_product` asks of the
    ``platform`` it is given (``family``, as Amaranth's Lattice platforms say it). The netlist
    flow (``lpu.tools.netlist``) elaborates with ``Family("ecp5")`` so that the netlist it
    simulates holds the primitives the bitstream does."""

    def __init__(self, family):
        self.family = family

def _family(platform):
    """The FPGA family ``platform`` is of, lower case (Amaranth says ``"iCE40"``)."""
    return str(getattr(platform, "family", "")).lower()


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

def registered_product(m, a, b, name, platform=None, halves=None):
    """``a * b`` two cycles later: the operands registered, then their product (a DSP block's
    input and output registers). On an ECP5 (``platform.family``) one ``MULT18X18D`` holds
    both registers (operands of at most 18 bits); elsewhere they are flip-flops that synthesis
    places where it likes (the same cycles, the same values). ``halves``, ``(first, rest)``:
    the product from logic of the caller's choosing, ``rest(first(a, b))``
    (``rtl.matmul_array.LUT_PRODUCT``), on every FPGA, with the register between the halves
    (``first``'s values) in place of the operands': the same cycles and values, and the
    logic split between the two."""
    p = Signal(signed(len(a) + len(b)), name=f"{name}_p", reset_less=True)
    if halves is not None:
        first, rest = halves
        terms = []
        for i, value in enumerate(first(a, b)):
            terms.append(Signal(value.shape(), name=f"{name}_t{i}", reset_less=True))
            m.d.sync += terms[-1].eq(value)
        m.d.sync += p.eq(rest(terms))
        return p
    if _family(platform) == "ecp5" and max(len(a), len(b)) <= 18:
        return _ecp5_mult18x18d(m, a, b, name)
    ra = Signal(a.shape(), name=f"{name}_a", reset_less=True)
    rb = Signal(b.shape(), name=f"{name}_b", reset_less=True)
    m.d.sync += [ra.eq(a), rb.eq(b), p.eq(ra * rb)]
    return p


def _ice40_mac16_8x8(m, pair, name):
    """Two independent signed 8 x 8 products in one ``SB_MAC16`` (``MODE_8x8``): the top
    one of the A and B operands' upper bytes on ``O[31:16]``, the bottom one of their lower
    bytes on ``O[15:0]``, each with the block's input registers (``A_REG``, ``B_REG``) and
    its 8 x 8 product register (``TOP/BOT_8x8_MULT_REG``, ``TOP/BOTOUTPUT_SELECT`` = 2): the
    two registers of :func:`registered_product`, inside the DSP block."""
    (a0, b0), (a1, b1) = pair
    o = Signal(32, name=f"{name}_o")
    one, two = Const(1, 1), Const(2, 2)
    m.submodules[name] = Instance(
        "SB_MAC16",
        p_NEG_TRIGGER=Const(0, 1), p_MODE_8x8=one, p_A_SIGNED=one, p_B_SIGNED=one,
        p_A_REG=one, p_B_REG=one, p_C_REG=Const(0, 1), p_D_REG=Const(0, 1),
        p_TOP_8x8_MULT_REG=one, p_BOT_8x8_MULT_REG=one,
        p_PIPELINE_16x16_MULT_REG1=Const(0, 1), p_PIPELINE_16x16_MULT_REG2=Const(0, 1),
        p_TOPOUTPUT_SELECT=two, p_BOTOUTPUT_SELECT=two,
        p_TOPADDSUB_LOWERINPUT=Const(0, 2), p_TOPADDSUB_UPPERINPUT=Const(0, 1),
        p_TOPADDSUB_CARRYSELECT=Const(0, 2), p_BOTADDSUB_LOWERINPUT=Const(0, 2),
        p_BOTADDSUB_UPPERINPUT=Const(0, 1), p_BOTADDSUB_CARRYSELECT=Const(0, 2),
        i_CLK=ClockSignal("sync"), i_CE=1,
        i_A=Cat(a0.as_signed()[:8], a1.as_signed()[:8]), i_B=Cat(b0.as_signed()[:8], b1.as_signed()[:8]),
        i_C=C(0, 16), i_D=C(0, 16),
        **{f"i_{h}HOLD": 0 for h in "ABCD"},
        **{f"i_{s}{half}": 0 for s in ("IRST", "ORST", "OLOAD", "ADDSUB", "OHOLD")
           for half in ("TOP", "BOT")},
        i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0, o_O=o)
    return [o[:16].as_signed(), o[16:].as_signed()]


def registered_products(m, operands, names, platform=None):
    """``[a * b for a, b in operands]``, each two cycles later like :func:`registered_product`
    (named ``names``). On an iCE40, whose 8 DSP blocks are fewer than a 4 x 4 array's
    products, two signed 8 x 8 products share each ``SB_MAC16`` (its ``MODE_8x8``, which
    synthesis does not infer: it maps one product to a block); elsewhere one
    :func:`registered_product` each."""
    if _family(platform) == "ice40" and all(max(len(a), len(b)) <= 8 for a, b in operands):
        out = []
        for i in range(0, len(operands) - 1, 2):
            out += _ice40_mac16_8x8(m, operands[i:i + 2], f"{names[i]}_{names[i + 1]}")
        if len(operands) % 2:
            out.append(registered_product(m, *operands[-1], names[-1], platform))
        return out
    return [registered_product(m, a, b, name, platform) for (a, b), name in zip(operands, names)]


def replicated_register(m, value, copies, name, platform=None):
    """``copies`` flip-flops each holding ``value`` one cycle later (reset to 0 with the
    domain), one per group of the loads of a wide select, so that no single flip-flop drives
    them all from wherever the placer put it (the ULX3S's critical path at 63.2 MHz: one
    select routed 10.4 ns across the chip to 256 multiplexers). Yosys merges identical
    flip-flops (``opt_merge``, with or without ``keep``), so on an ECP5 each copy is a
    hand-instantiated ``TRELLIS_FF`` in exactly the configuration synthesis gives a
    synchronously reset register (``LSR`` = the domain's reset, ``SRMODE`` ``LSR_OVER_CE``),
    which no pass merges; elsewhere, plain registers (the same values on every cycle).
    A ``value`` of several bits gives copies of its shape, one flip-flop per bit."""
    value = Value.cast(value)
    out = []
    for i in range(copies):
        q = Signal(value.shape(), name=f"{name}_{i}")
        if _family(platform) == "ecp5":
            for b in range(len(value)):
                m.submodules[f"{name}_{i}" + (f"_{b}" if len(value) > 1 else "")] = Instance(
                    "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK",
                    p_LSRMUX="LSR", p_REGSET="RESET", p_SRMODE="LSR_OVER_CE",
                    i_CLK=ClockSignal("sync"), i_LSR=ResetSignal("sync"), i_DI=value[b],
                    o_Q=q[b])
        else:
            m.d.sync += q.eq(value)
        out.append(q)
    return out


def read_first_port(m, memory, name, platform=None):
    """A read port of ``memory`` (a submodule of ``m``) whose word appears the cycle after its
    address, read-first: a read of the address being written in the same cycle (by a port in
    the sync domain) returns the old word. Returns an object with ``addr`` and ``data``.

    On an iCE40 (:func:`falling_edge_reads`), whose block RAM leaves that read undefined
    (Yosys then builds read-first from logic: a register of every write and a bypass to the
    read data), the block RAM reads on the falling edge, half a cycle before the rising edge
    that writes, and a register on the rising edge holds its word: the same cycles and words,
    fewer cells (the iCEBreaker's: 6,487 -> 6,150). Elsewhere, an ordinary port."""
    if not falling_edge_reads(platform):
        return memory.read_port(transparent_for=())
    port = falling_edge_read_port(m, memory, name)
    data = Signal(memory.shape, name=f"{name}_data", reset_less=True)
    m.d.sync += data.eq(port.data)
    return SimpleNamespace(addr=port.addr, data=data)


def falling_edge_reads(platform):
    """Does the tile read its block RAMs on the falling edge on ``platform``? (An iCE40: its
    block RAM's read of the address being written on the same edge is undefined.)"""
    return _family(platform) == "ice40"


def falling_edge_read_port(m, memory, name):
    """A read port of ``memory`` (a submodule of ``m``) clocked by the sync clock's falling
    edge (an iCE40's ``SB_RAM40_4KNR``): it reads the address of the cycle in that cycle's
    middle, after the writes of the cycle before and before this cycle's, and holds the word
    until the next cycle's middle."""
    domain = f"{name}_neg"
    m.domains += ClockDomain(domain, clk_edge="neg", reset_less=True, local=True)
    m.d.comb += ClockSignal(domain).eq(ClockSignal("sync"))
    return memory.read_port(domain=domain)


SPRAM_DEPTH, SPRAM_BITS = 16384, 16     # the UP5K's SB_SPRAM256KA: 16 K x 16


def single_port_memory(m, width, depth, name, platform=None):
    """A RAM of ``depth`` words of ``width`` bits with one port: in a cycle with ``we`` it
    writes ``wdata`` at ``addr`` (at the end of the cycle), otherwise it reads ``addr`` and
    ``rdata`` holds the word from the next cycle on (after a write, ``rdata`` is undefined
    until the next read). Returns an object with ``addr``, ``we``, ``wdata`` and ``rdata``.

    On an iCE40 (the UP5K: its DSPs and SPRAMs are what the tile's iCE40 primitives ask
    for, as :func:`registered_products`), ``ceil(width / 16)`` hand-instantiated
    ``SB_SPRAM256KA``, which Yosys does not infer and which the iCEBreaker's tile leaves
    unused otherwise; elsewhere an ordinary memory with a write and a read port on one
    address."""
    port = SimpleNamespace(addr=Signal(range(depth), name=f"{name}_addr"),
                           we=Signal(name=f"{name}_we"),
                           wdata=Signal(width, name=f"{name}_wdata"),
                           rdata=Signal(width, name=f"{name}_rdata"))
    if _family(platform) == "ice40" and depth <= SPRAM_DEPTH:
        for i in range(-(-width // SPRAM_BITS)):
            bits = slice(i * SPRAM_BITS, min(width, (i + 1) * SPRAM_BITS))
            wdata, rdata = Signal(SPRAM_BITS), Signal(SPRAM_BITS)
            m.d.comb += [wdata.eq(port.wdata[bits]), port.rdata[bits].eq(rdata)]
            m.submodules[f"{name}_{i}"] = Instance(
                "SB_SPRAM256KA", i_ADDRESS=Cat(port.addr, C(0, 14 - len(port.addr))),
                i_DATAIN=wdata, i_MASKWREN=C(0b1111, 4), i_WREN=port.we, i_CHIPSELECT=1,
                i_CLOCK=ClockSignal("sync"), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,  # on, awake
                o_DATAOUT=rdata)
        return port
    from amaranth.lib.memory import Memory
    m.submodules[name] = mem = Memory(shape=width, depth=depth, init=[])
    wr, rd = mem.write_port(), mem.read_port(transparent_for=())
    m.d.comb += [wr.addr.eq(port.addr), wr.data.eq(port.wdata), wr.en.eq(port.we),
                 rd.addr.eq(port.addr), rd.en.eq(~port.we), port.rdata.eq(rd.data)]
    return port
