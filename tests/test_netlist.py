"""Gate-level co-simulation (``lpu.tools.netlist``, ``make sim NETLIST=icebreaker``): the
iCEBreaker's post-synthesis netlist (``synth_ice40 -dsp``: LUTs, carries, flip-flops, block
RAMs and ``SB_MAC16`` DSPs through Yosys's cell models) passes the tile testbench against
the golden model, bit and cycle exact, and a DSP configured against the model fails the
MXM's."""

import re
import subprocess
import sys

from lpu.contract.config import preset
from lpu.tools.netlist import NETLIST_OPT, netlist_verilog
from lpu.tools.simulation import BUILD, run_testbench

TESTCASE = "test_gemm_quantised$"       # 6 random int8 GEMMs, every event's cycle checked


def _run(design, verilog, name, testcase=None):
    return run_testbench(design, preset("icebreaker"), seed=1000, testcase=testcase,
                         run_dir=BUILD / "test-runs" / f"netlist-{name}", verilog=verilog,
                         opt_fast=NETLIST_OPT, log=lambda _m: None)


def test_icebreaker_tile_netlist():
    good = netlist_verilog("icebreaker", "tile", log=lambda _m: None)
    assert len(re.findall(r"^\s*SB_MAC16 #\(", good, re.M)) >= 16     # the products in DSPs
    res = _run("tile", good, "tile", TESTCASE)
    assert res.passed and res.tests == 1, f"gate-level tile failed: {res.message} ({res.log})"


def test_miswired_dsp_fails_the_mxm_netlist():
    """The MXM's netlist (its products in SB_MAC16s) passes its testbench; with every DSP
    told its A operand is unsigned, the netlist no longer computes the model's int8 products,
    and the same testbench says so."""
    good = netlist_verilog("icebreaker", "mxm", log=lambda _m: None)
    res = _run("mxm", good, "mxm")
    assert res.passed, f"gate-level MXM failed: {res.message} ({res.log})"
    broken = re.sub(r"\.A_SIGNED\(32'd1\)", ".A_SIGNED(32'd0)", good)
    assert broken != good
    res = _run("mxm", broken, "mxm-unsigned-dsp")
    assert not res.passed and "model" in res.message, res.message


def test_netlist_knob_errors(tmp_path):
    for args, msg in ((["--netlist", "nope"], "unknown board 'nope' for NETLIST"),
                      (["--netlist", "icebreaker", "--config", "tiny"], "drop CONFIG=tiny"),
                      (["--netlist", "icebreaker", "--test", "vxm"],
                       "a netlist runs the tile, bridge, mxm testbenches")):
        r = subprocess.run([sys.executable, "-m", "lpu", "sim", *args], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.splitlines()) == 1, \
            r.stderr
