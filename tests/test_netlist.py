"""Gate-level co-simulation (``lpu.tools.netlist``, ``make sim NETLIST=icebreaker``): the
iCEBreaker's post-synthesis netlist (``synth_ice40``: LUTs, carries, flip-flops, block
RAMs and its hand-instantiated ``SB_MAC16`` DSPs, two 8 x 8 products each, through Yosys's
cell models) passes the tile testbench against
the golden model, bit and cycle exact, and DSPs wired against the model fail the MXM's. The ULX3S's SRAM banks (``synth_ecp5``: ``DP16KD`` block RAMs, through the model of
them ``lpu.tools.netlist`` supplies) pass the SRAM testbench, and fail it with a byte lane
of that model miswired. The ULX3S's MXM (its products in hand-instantiated, registered
``MULT18X18D``s) passes the MXM testbench, and fails it with one DSP's registers bypassed.
The ULX3S's whole tile (the VXM's DSPs too) passes the tile testbench's quantised GEMMs."""

import re
import subprocess
import sys

import pytest

from lpu.contract.config import PARAM_WORD_BITS, preset
from lpu.tools.netlist import NETLIST_OPT, netlist_verilog
from lpu.tools.simulation import BUILD, run_testbench

# an ECP5 DSP instance in a netlist, its parameters as group 1
ECP5_DSP = re.compile(r'^\s*MULT18X18D #\((.*?)\)\s+\S+\s+\(', re.M | re.S)
TESTCASE = "test_gemm_quantised$"       # 6 random int8 GEMMs, every event's cycle checked


def _run(design, verilog, name, testcase=None, preset_name="icebreaker", plusargs=()):
    return run_testbench(design, preset(preset_name), seed=1000, testcase=testcase,
                         run_dir=BUILD / "test-runs" / f"netlist-{name}", verilog=verilog,
                         opt_fast=NETLIST_OPT, log=lambda _m: None, plusargs=plusargs)


def _fault(good, bad):
    """``good`` (netlist text) chosen at run time: ``bad`` instead when the simulator is run
    with ``+lpu_fault``. One build runs with the fault off and on (a netlist's build took
    50 s; a constant select Verilator folds away)."""
    return f'($test$plusargs("lpu_fault") ? {bad} : {good})'


def test_icebreaker_tile_netlist():
    """The tile's netlist passes its quantised GEMMs. Its VXM's parameters are in two of the
    UP5K's SPRAMs (``rtl.primitives.single_port_memory``); with their top nibble's write
    enable off (``MASKWREN`` 0111, the same build run with ``+lpu_fault``), the same GEMMs
    fail."""
    good = netlist_verilog("icebreaker", "tile", log=lambda _m: None)
    # the 16 products in the UP5K's 8 DSPs, two each
    assert len(re.findall(r"^\s*SB_MAC16 #\(", good, re.M)) == preset("icebreaker").lanes ** 2 // 2
    assert good.count(".MODE_8x8(1'h1)") == preset("icebreaker").lanes ** 2 // 2
    spram = len(re.findall(r"^\s*SB_SPRAM256KA ", good, re.M))
    assert spram == PARAM_WORD_BITS // 16 and good.count(".MASKWREN(4'hf)") == spram
    netlist = good.replace(".MASKWREN(4'hf)", ".MASKWREN(" + _fault("4'hf", "4'h7") + ")")
    res = _run("tile", netlist, "tile", TESTCASE)
    assert res.passed and res.tests == 1, f"gate-level tile failed: {res.message} ({res.log})"
    res = _run("tile", netlist, "tile-spram-nibble", TESTCASE, plusargs=["lpu_fault"])
    assert not res.passed and "model" in res.message, res.message


# `make test-heavy` (a minute of make test's budget): make test's iCEBreaker tile netlist reads
# its banks on the falling edge too
@pytest.mark.heavy
def test_icebreaker_sram_netlist_reads_on_the_falling_edge():
    """The iCE40's block RAM leaves a read of the address being written undefined, so the
    banks read on the falling edge (``rtl.primitives.read_first_port``: ``SB_RAM40_4KNR``,
    then a register): the SRAM testbench (read-during-write, lane masks, streams) passes on
    the netlist. Moved to the rising edge, the same netlist fails it."""
    good = netlist_verilog("icebreaker", "sram", log=lambda _m: None)
    n = len(re.findall(r"^\s*SB_RAM40_4KNR #\(", good, re.M))
    assert n >= preset("icebreaker").banks and "SB_RAM40_4K #(" not in good.split("module SB_")[0]
    res = _run("sram", good, "icebreaker-sram")
    assert res.passed and res.tests >= 5, f"gate-level SRAM failed: {res.message} ({res.log})"
    rising = good.replace("SB_RAM40_4KNR #(", "SB_RAM40_4K #(", n).replace(".RCLKN(", ".RCLK(", n)
    res = _run("sram", rising, "icebreaker-sram-rising")
    assert not res.passed and "model" in res.message, res.message


def test_miswired_dsp_fails_the_mxm_netlist():
    """The MXM's netlist (its products in SB_MAC16s, two 8 x 8 each) passes its testbench;
    with every DSP told its A operands (the activations) are unsigned, the netlist no longer
    computes the model's int8 products (in 8 x 8 mode the block extends each byte itself),
    and the same testbench says so."""
    good = netlist_verilog("icebreaker", "mxm", log=lambda _m: None)
    res = _run("mxm", good, "mxm")
    assert res.passed, f"gate-level MXM failed: {res.message} ({res.log})"
    broken = good.replace(".A_SIGNED(1'h1)", ".A_SIGNED(1'h0)")
    assert good.count(".A_SIGNED(1'h1)") == preset("icebreaker").lanes ** 2 // 2
    res = _run("mxm", broken, "mxm-unsigned-dsp")
    assert not res.passed and "model" in res.message, res.message


def test_ulx3s_sram_netlist_and_a_miswired_block_ram():
    """The ULX3S's banks in ``DP16KD``s (Yosys ships the primitive as a black box; the model
    is ours, wired as Yosys's ``brams_map_16kd.v`` maps the RAM): every word of the SRAM
    testbench (strides, wrapping, read-during-write, lane masks, random traffic) on its
    cycle. With the model's first byte-lane write enable taken from the second, the same
    testbench fails: the model is what the tests rely on, so it must be able to be wrong."""
    good = netlist_verilog("ulx3s", "sram", log=lambda _m: None)
    assert len(re.findall(r"^\s*DP16KD ", good, re.M)) >= 2 * preset("ulx3s").banks
    lane0 = "if (ADA0) lpu_row[{lpu_wa, 1'b0}][8:0]"
    assert good.count(lane0) == 1
    netlist = good.replace(lane0, lane0.replace("ADA0", _fault("ADA0", "ADA1")))
    res = _run("sram", netlist, "ulx3s-sram", preset_name="ulx3s")
    assert res.passed and res.tests >= 5, f"gate-level ULX3S SRAM failed: {res.message} ({res.log})"
    res = _run("sram", netlist, "ulx3s-sram-lane", preset_name="ulx3s", plusargs=["lpu_fault"])
    assert not res.passed and "model expects" in res.message, res.message


@pytest.mark.heavy          # 7.5 min of one core: `make test-heavy`, `make sim NETLIST=ulx3s`
def test_ulx3s_tile_netlist():
    """The ULX3S tile's netlist (``synth_ecp5``) passes its quantised GEMMs, every event on
    its cycle: its sequencer's instruction queue, and the instruction memory Yosys maps with
    don't-care read-during-write collisions (``no_rw_check``: only a write of instruction 0
    while idle meets a read, and a register passes that word on), against the model."""
    cfg = preset("ulx3s")
    good = netlist_verilog("ulx3s", "tile", log=lambda _m: None)
    # the array's products, and the VXM's four partial products a lane (``rtl.primitives``:
    # hand-instantiated with the DSP's own input and output registers, two pipeline stages)
    dsps = ECP5_DSP.findall(good)
    assert len(dsps) == cfg.lanes ** 2 - cfg.lut_products + 4 * cfg.vxm_group, len(dsps)
    assert all(f'.REG_{r}_CLK("CLK0")' in d for d in dsps for r in ("INPUTA", "INPUTB", "OUTPUT"))
    res = _run("tile", good, "ulx3s-tile", TESTCASE, preset_name="ulx3s")
    assert res.passed and res.tests == 1, f"gate-level ULX3S tile failed: {res.message} ({res.log})"


def test_ulx3s_mxm_netlist_registered_dsps_and_a_miswired_one():
    """The array's products on the ECP5 are hand-instantiated (one registered ``MULT18X18D`` a
    PE), and the accumulator's forwarding selects are one hand-instantiated ``TRELLIS_FF`` a
    lane, which synthesis keeps apart: the ULX3S netlist of the ``tiny`` MXM (array and
    accumulator: 10 DSP products and 6 from logic, as ``make bitstream BOARD=ulx3s
    CONFIG=tiny`` builds it; the 8-lane one is in the ULX3S tile's netlist, ``make
    test-heavy``) passes the MXM testbench. With one DSP's registers bypassed (``REG_*_CLK`` ``NONE``),
    its PE adds each product two cycles early and the same testbench says so. (Its
    signedness cannot be miswired visibly here: the low 16 bits of an 8 x 8 product are the
    same either way. The VXM's DSPs are checked in the tile's netlist, whose GEMMs
    requantise every result.)"""
    cfg = preset("tiny")
    good = netlist_verilog("ulx3s", "mxm", log=lambda _m: None, config="tiny")
    dsps = ECP5_DSP.findall(good)
    assert len(dsps) == cfg.lanes ** 2 - cfg.lut_products, len(dsps)
    assert all('.REG_INPUTB_CLK("CLK0")' in d and '.REG_OUTPUT_CLK("CLK0")' in d for d in dsps)
    selects = set(re.findall(r"acc\.(use_(?:stored|sum\d)_\d+)", good))
    assert len(selects) == cfg.acc_update_delay * cfg.lanes + cfg.lanes, sorted(selects)
    res = _run("mxm", good, "ulx3s-tiny-mxm", preset_name="tiny")
    assert res.passed and res.tests >= 4, f"gate-level ULX3S MXM failed: {res.message} ({res.log})"
    # one PE's product two cycles early: its DSP's input and output registers bypassed
    first = ECP5_DSP.search(good)
    params = first.group(1).replace('_CLK("CLK0")', '_CLK("NONE")')
    broken = good[:first.start(1)] + params + good[first.end(1):]
    res = _run("mxm", broken, "ulx3s-tiny-mxm-unregistered", preset_name="tiny")
    assert not res.passed and "model" in res.message, res.message


def test_netlist_knob_errors(tmp_path):
    for args, msg in ((["--netlist", "nope"], "unknown board 'nope' for NETLIST"),
                      (["--netlist", "icebreaker", "--config", "tiny"], "drop CONFIG=tiny"),
                      (["--netlist", "icebreaker", "--test", "chip"],
                       "a netlist runs the tile, bridge, mxm, vxm, sram testbenches")):
        r = subprocess.run([sys.executable, "-m", "lpu", "sim", *args], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.splitlines()) == 1, \
            r.stderr
