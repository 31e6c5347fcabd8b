"""The FPGA flow in CI, short of place and route (the full ULX3S build takes ~20 min): the
board top (tile + serial bridge on the ULX3S pins) synthesises with the pinned YoWASP Yosys,
fits the ECP5-85F, and every multiplier of the design lands in a DSP block."""

from lpu.tools.fpga import BOARDS, build_bitstream


def test_ulx3s_synthesis():
    cfg = BOARDS["ulx3s"][0]
    report = build_bitstream("ulx3s", out=lambda text: None, synth_only=True)
    assert report["fits"], report
    # one 18x18 block per int8 product of the array; four per 32x32 requantisation
    # multiplier, of which the VXM has one per lane it requantises each cycle
    assert report["dsp"][0] == cfg.lanes ** 2 + 4 * cfg.vxm_group, report
    assert report["bram"][0] > 0 and report["logic"][0] > 0 and report["ff"][0] > 0, report
