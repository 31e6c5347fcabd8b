"""`make sim`: every testbench on every preset and several seeds, in parallel.

One *job* is one testbench (all its cocotb tests) on one preset with one seed, run as its own
simulator process under a wall-clock timeout. Jobs are listed in a fixed order, so
``--shard i/n`` picks a deterministic, disjoint slice; the union of all n shards is the whole
regression, and ``lpu merge-junit`` combines their JUnit files.
"""

import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ..contract.config import PRESETS, preset
from .simulation import BUILD, ROOT, TESTBENCHES, build, run_testbench

__all__ = ["Job", "plan", "run_regression", "merge_junit"]

# Presets where Icarus is fast enough for the cross-check (it is an event-driven interpreter)
ICARUS_PRESETS = ("tiny", "default")
# The chip testbench runs chips of these presets' tiles (``NAME*N``), for these tile counts;
# the single-tile testbenches run the presets themselves
CHIP_PRESETS = ("tiny", "default")
CHIP_TILES = (2, 4)
DEFAULT_SEEDS = 2
TIMEOUT_S = int(os.environ.get("LPU_SIM_TIMEOUT", "900"))


@dataclass(frozen=True)
class Job:
    testbench: str
    preset: str
    seed: int
    testcase: str | None = None

    @property
    def name(self):
        return f"{self.testbench}/{self.preset}/seed{self.seed}" + (f"/{self.testcase}" if self.testcase else "")

    @property
    def folder(self):
        """The job's run folder name (a chip preset's ``*`` written as ``x``)."""
        return self.name.replace("/", "-").replace("*", "x")

    def rerun(self, sim, netlist=None):
        test = self.testcase or self.testbench
        config = f"'{self.preset}'" if "*" in self.preset else self.preset
        where = f"NETLIST={netlist}" if netlist else f"CONFIG={config}"
        return (f"make sim TEST={test} {where} SEED={self.seed} WAVES=1"
                + (f" SIM={sim}" if sim != "verilator" else ""))


def _testcases():
    """cocotb test name -> testbench, read from the tb sources."""
    found = {}
    for tb, module in TESTBENCHES.items():
        path = ROOT / (module.replace(".", "/") + ".py")
        if path.exists():
            for name in re.findall(r"^async def (test_\w+)\(", path.read_text(), re.M):
                found.setdefault(name, []).append(tb)
    return found


def plan(configs=None, test=None, seed=None, seeds=None, shard=None, sim="verilator"):
    """The ordered list of jobs. Raises ValueError naming a bad knob."""
    names = list(PRESETS) if not configs else [c.strip() for c in configs.split(",") if c.strip()]
    for n in names:
        preset(n)                          # ConfigError for an unknown preset
    if sim == "icarus" and not configs:
        names = [n for n in names if n in ICARUS_PRESETS]
    if seed is not None:
        seed_list = [int(seed)]
    else:
        count = DEFAULT_SEEDS if seeds is None else int(seeds)
        if count < 1:
            raise ValueError(f"SEEDS={count}: must be >= 1")
        seed_list = [1000 + i for i in range(count)]
    benches = list(TESTBENCHES)
    testcase = None
    if test:
        if test in TESTBENCHES:
            benches = [test]
        else:
            cases = _testcases()
            hits = {k: v for k, v in cases.items() if re.search(test, k)}
            if not hits:
                raise ValueError(f"TEST={test} matches no testbench ({', '.join(TESTBENCHES)}) "
                                 f"and no cocotb test")
            benches = sorted({tb for v in hits.values() for tb in v}, key=list(TESTBENCHES).index)
            testcase = test
    def configs_for(tb):
        if tb == "chip":            # chips: NAME*N given, or CHIP_TILES of the chip presets
            return [p for p in names if "*" in p] + [f"{p}*{n}" for p in names
                                                      if p in CHIP_PRESETS for n in CHIP_TILES]
        return [p for p in names if "*" not in p]
    jobs = [Job(tb, p, s, testcase) for tb in benches for p in configs_for(tb) for s in seed_list]
    if shard:
        m = re.fullmatch(r"(\d+)/(\d+)", shard)
        if not m or not 1 <= int(m[1]) <= int(m[2]):
            raise ValueError(f"SHARD={shard}: must be i/n with 1 <= i <= n")
        i, n = int(m[1]), int(m[2])
        jobs = jobs[i - 1::n]
    return jobs


def _fmt_cycles(n):
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _netlist_options(verilog):
    """Build options of a gate-level job (``lpu.tools.netlist``), or none for RTL."""
    if verilog is None:
        return {}
    from .netlist import NETLIST_OPT
    return {"verilog": verilog, "opt_fast": NETLIST_OPT}


def _build_task(item):
    """(testbench, preset, sim, waves, netlist or None) -> the build's log lines (runs on
    any executor)."""
    tb, p, sim, waves, verilog = item
    lines = []
    build(tb, preset(p), sim=sim, waves=waves, log=lines.append, **_netlist_options(verilog))
    return lines


def _job_task(item):
    """(job, sim, waves, timeout, runs folder, netlist or None) -> (SimResult, log lines)
    (runs on any executor; the client chooses the folder, which the workers share)."""
    job, sim, waves, timeout, runs, verilog = item
    lines = []
    run_dir = Path(runs) / sim / job.folder
    res = run_testbench(job.testbench, preset(job.preset), seed=job.seed, run_dir=run_dir,
                        sim=sim, waves=waves, timeout=timeout, testcase=job.testcase,
                        log=lines.append, **_netlist_options(verilog))
    return res, lines


def run_regression(jobs, *, sim="verilator", waves=False, jobs_parallel=None, out=None,
                   timeout=TIMEOUT_S, cluster=None, cluster_builds="shared", netlist=None):
    """Run ``jobs``; print progress and a summary; write build/sim/results.xml.
    ``cluster``: run them on a Dask cluster (``lpu.tools.executor``). ``netlist``: a board
    whose post-synthesis netlists the jobs simulate instead of the RTL
    (``lpu.tools.netlist``). Returns the number of failed jobs."""
    from .executor import make_executor
    out = out or sys.stdout
    say = lambda s: (out.write(s + "\n"), out.flush())
    t0 = time.monotonic()
    executor = make_executor(cluster, jobs_parallel or os.cpu_count() or 1, cluster_builds)
    results_dir = BUILD / "sim"
    results_dir.mkdir(parents=True, exist_ok=True)
    where = f" on the Dask cluster {executor.name}" if cluster else ""
    what = f"{sim}, the {netlist} netlist" if netlist else sim
    say(f"lpu sim: {len(jobs)} jobs ({what}), {executor.parallel} in parallel{where}")
    texts = {}
    if netlist:
        from .netlist import netlist_verilog
        for tb in sorted({j.testbench for j in jobs}):
            texts[tb] = netlist_verilog(netlist, tb, log=lambda s: say("  " + s))
    runs_dir = results_dir / "runs" / (f"netlist-{netlist}" if netlist else "")
    done = []
    rescheduled = []
    try:
        # Build every (design, preset) first, in parallel: later jobs only run.
        pairs = sorted({(j.testbench, j.preset) for j in jobs})
        build_errors = {}
        for (tb, p, *_rest), res, _info in executor.map_unordered(
                _build_task, [(tb, p, sim, waves, texts.get(tb)) for tb, p in pairs]):
            if isinstance(res, Exception):  # a failed build fails its jobs, not the regression
                build_errors[(tb, p)] = str(res)
                say(f"  BUILD FAILED {tb}/{p}: {str(res).splitlines()[0]}")
            else:
                for line in res:
                    say("  " + line)
        t_build = time.monotonic() - t0
        for job in jobs:
            if (job.testbench, job.preset) in build_errors:
                say(f"FAIL  {job.name:32s} build failed")
                done.append((job, None, build_errors[(job.testbench, job.preset)]))
        todo = [(j, sim, waves, timeout, str(runs_dir), texts.get(j.testbench)) for j in jobs
                if (j.testbench, j.preset) not in build_errors]
        for (job, *_rest), res, info in executor.map_unordered(_job_task, todo):
            if info.get("rescheduled"):
                rescheduled.append(job)
                say(f"RESCHEDULED {job.name}: its worker died before it finished; run again")
            if isinstance(res, Exception):
                msg = (f"lost: its worker died twice ({type(res).__name__})"
                       if type(res).__name__ == "KilledWorker" else f"{type(res).__name__}: {res}")
                say(f"FAIL  {job.name:32s} {msg}")
                done.append((job, None, msg))
                continue
            res, lines = res
            for line in lines:
                say("  " + line)
            status = "PASS" if res.passed else "FAIL"
            say(f"{status}  {job.testbench:5s} {job.preset:8s} seed={job.seed:<6d} "
                f"{res.tests:2d} tests  {_fmt_cycles(res.sim_cycles):>8s} cycles  {res.wall:6.1f} s")
            done.append((job, res, res.message))
    except KeyboardInterrupt:
        say("interrupted: stopping; running simulators are killed")
        executor.cancel()
        executor.close()
        raise
    executor.close()

    failed = [(j, r, m) for j, r, m in done if r is None or not r.passed]
    # Failures: re-run with waves when the first run had none, then print how to reproduce.
    for job, res, msg in failed:
        say("")
        say(f"FAILED {job.name}: {msg}")
        say(f"  seed:   {job.seed}")
        if res is not None:
            say(f"  log:    {res.log}")
            wave = res.waves
            if wave is None and not waves and sim == "verilator":
                run_dir = runs_dir / sim / (job.folder + "-waves")
                rerun = run_testbench(job.testbench, preset(job.preset), seed=job.seed,
                                      run_dir=run_dir, sim=sim, waves=True, timeout=timeout,
                                      testcase=job.testcase, log=lambda s: None,
                                      **_netlist_options(texts.get(job.testbench)))
                wave = rerun.waves
            say(f"  waves:  {wave if wave else '(none written)'}")
        say(f"  rerun:  {job.rerun(sim, netlist)}")

    _write_junit(done, results_dir / "results.xml", sim)
    wall = time.monotonic() - t0
    _summary(say, done, wall, t_build)
    if rescheduled:
        say(f"rescheduled: {len(rescheduled)} job(s) whose worker died: "
            + ", ".join(j.name for j in rescheduled))
    say(f"JUnit: {results_dir / 'results.xml'}")
    from .coverage import format_coverage, merge_coverage_files
    cov = merge_coverage_files([r.log.parent / "coverage.yml" for _, r, _ in done if r is not None],
                               results_dir)
    if cov is not None:
        for line in format_coverage(cov, results_dir / "coverage.json"):
            say(line)
        from .plots import plot_functional_coverage
        plot_functional_coverage(cov, results_dir / "coverage.png")
    return len(failed) + (len(jobs) - len(done))


def _summary(say, done, wall, t_build):
    n = len(done)
    npass = sum(1 for _, r, _ in done if r is not None and r.passed)
    cycles = sum(r.sim_cycles for _, r, _ in done if r is not None)
    say("")
    say("testbench  preset    jobs  pass  cycles      sim wall  cycles/s")
    groups = {}
    for j, r, _ in done:
        g = groups.setdefault((j.testbench, j.preset), [0, 0, 0, 0.0])
        g[0] += 1
        if r is not None:
            g[1] += r.passed
            g[2] += r.sim_cycles
            g[3] += r.wall
    for (tb, p), (jn, jp, c, w) in sorted(groups.items()):
        say(f"{tb:10s} {p:8s} {jn:5d} {jp:5d}  {_fmt_cycles(c):>9s} {w:8.1f} s  {c / w if w else 0:9.0f}")
    say(f"TOTAL: {n} jobs, {npass} passed, {n - npass} failed, {_fmt_cycles(cycles)} simulated "
        f"cycles, wall {wall:.1f} s (builds {t_build:.1f} s)")


def _write_junit(done, path, sim):
    suites = ET.Element("testsuites", name="lpu-sim")
    for job, res, msg in done:
        suite = ET.SubElement(suites, "testsuite", name=f"{sim}.{job.name}")
        if res is not None and res.results_xml.exists():
            for case in ET.parse(res.results_xml).getroot().iter("testcase"):
                case.set("classname", f"{sim}.{job.testbench}.{job.preset}.seed{job.seed}")
                suite.append(case)
        if res is None or not res.passed:
            if res is None or res.tests == 0 or not any(
                    c.find("failure") is not None or c.find("error") is not None for c in suite):
                case = ET.SubElement(suite, "testcase", name=job.testbench,
                                     classname=f"{sim}.{job.testbench}.{job.preset}.seed{job.seed}")
                ET.SubElement(case, "failure", message=msg or "failed")
        suite.set("tests", str(len(suite.findall("testcase"))))
        suite.set("failures", str(sum(1 for c in suite if c.find("failure") is not None
                                      or c.find("error") is not None)))
    ET.ElementTree(suites).write(path, encoding="unicode", xml_declaration=True)


def merge_junit(inputs, output):
    """Combine the results.xml of several shards into one file."""
    merged = ET.Element("testsuites", name="lpu-sim")
    for p in inputs:
        root = ET.parse(p).getroot()
        for suite in (root.iter("testsuite") if root.tag == "testsuites" else [root]):
            merged.append(suite)
    ET.ElementTree(merged).write(output, encoding="unicode", xml_declaration=True)
    return len(merged.findall(".//testcase"))
