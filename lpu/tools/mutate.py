"""`make mutate`: how strong is the regression? Mutation testing of the tile's RTL.

Mutants are made at the netlist level, as YosysHQ's mcy does: Amaranth emits the tile as
RTLIL with source attributes, Yosys flattens it (``proc; flatten``) and ``mutate -list``
proposes single-bit mutations (a cell's port bit inverted, or tied to 0 or 1), each carrying
the Amaranth source line of the statement it breaks. Only mutations located in ``rtl/`` are
kept, a seeded sample of them is taken, and every mutant is:

* **stillborn** when Yosys or Verilator cannot build it;
* **equivalent** when it changes only a cell's output bit that nothing reads (a bit an
  assignment cuts off), or when its netlist, optimised (``opt -full``), is identical to the
  original's;
* otherwise run through the regression's testbenches for the tile (``tile`` on the chosen
  preset, one seed): **killed** if any fails (a wrong result, a wrong cycle, a hang caught by
  the watchdog or the wall-clock timeout), **survived** if all pass.

The un-mutated netlist goes through the same flow first and must pass: otherwise the flow,
not a mutant, is broken. Results are cached per mutant (hash of the mutant netlist, the
testbench and model sources, preset and seed) in ``build/mutate/cache``, so a rerun only runs
what changed. ``build/mutate/report.json`` and ``report.md``: killed, survived, equivalent,
stillborn, ``score = killed / (killed + survived)``, and every survivor with its source file
and line.
"""

import hashlib
import json
import os
import random
import re
import subprocess
import time
from pathlib import Path

from ..contract.config import preset
from .simulation import BUILD, ROOT, generate_verilog, run_testbench

__all__ = ["mutation_candidates", "run_mutation", "MUTATE"]

MUTATE = BUILD / "mutate"
FLOW = "read_rtlil {il}; hierarchy -top top; proc -nomux -norom; flatten; memory_collect; opt_clean"
TESTBENCHES = ("tile",)
TB_SEED = 1000          # the testbench seed `make sim` runs first
TESTCASE = None          # every test of the tile testbench
# Mutants are built with the C++ compiler's -O0 (verilated.mk's OPT_FAST): a mutant's build
# dominates its cost and its simulation is short, so unoptimised code is the faster trade
MUTANT_OPT = "-O0"


def _yosys(script, cwd):
    from .toolchain import yosys_command
    r = subprocess.run(yosys_command() + ["-q", "-p", script], cwd=cwd, capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1:] or ["yosys failed"])
    return r


def _rtlil(config, work, design="tile"):
    path = work / f"{design}.il"
    text = generate_verilog(design, config, emit_src=True, backend="rtlil")
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


# The tile's units that have a testbench of their own, by their instance name in rtl/tile.py.
# A mutant located in one is also run through that unit's testbench (as `make sim` would):
# the same mutation, applied to the unit's own netlist (Amaranth emits a unit's module the
# same whether it is elaborated alone or in the tile, so its cells keep their names).
UNITS = {"vxm": "vxm", "mxm": "mxm", "mem": "sram"}


def unit_mutation(mutation):
    """(design, the mutation on that unit's own netlist), or None when it is not in a unit."""
    m = re.search(r"-cell \$flatten\\(\w+)\.(\S+)", mutation)
    if not m or m.group(1) not in UNITS:
        return None
    inst, rest = m.group(1), m.group(2)
    # the tile's $flatten\mem.\bank0.\agen.$15 is the unit's $flatten\bank0.\agen.$15; the
    # tile's $flatten\vxm.$177 is the unit's $177
    cell = rest if rest.startswith("$") else "$flatten" + rest
    out = mutation.replace(m.group(0), f"-cell {cell}")
    # -wire/-wirebit only document the mutation (Yosys ignores them), and the wire may be
    # another unit's port in the tile: drop them
    out = re.sub(r" -wire \S+ -wirebit \d+", "", out)
    return UNITS[inst], out


def _source(cmd):
    """The first Amaranth source line in ``rtl/`` a mutation command names, relative."""
    for src in re.findall(r"-src (\S+)", cmd):
        path, _, line = src.rpartition(":")
        p = Path(path)
        try:
            rel = p.resolve().relative_to(ROOT)
        except ValueError:
            continue
        if rel.parts[0] == "rtl":
            return str(rel), int(line)
    return None


def mutation_candidates(config, work, count, seed, filters="", located_only=True):
    """``count`` mutation commands located in ``rtl/``, a seeded sample of Yosys's list;
    ``filters``: Yosys ``mutate`` options that narrow the list (``-wire``, ``-mode``, ...)."""
    il = _rtlil(config, work)
    listing = work / f"list-{seed}-{count}.ys"
    _yosys(f"{FLOW.format(il=il.name)}; mutate -list {max(8 * count, 64)} -seed {seed} "
           f"{filters} -o {listing.name}", work)
    cmds = [c for c in listing.read_text().splitlines() if c.startswith("mutate ")]
    located = [c for c in cmds if _source(c) or not located_only]
    random.Random(seed).shuffle(located)
    return located[:count]


def _netlist(work, il, mutation, name):
    """The flow's Verilog with ``mutation`` applied (``None``: the original), raw and
    optimised (``None`` when Yosys's optimiser rejects the mutant, e.g. a constant forced onto
    a register with another init value: then it is simply not shown equivalent)."""
    raw, opt = work / f"{name}.v", work / f"{name}.opt.v"
    _yosys(f"{FLOW.format(il=il.name)}; {mutation or ''}; opt_clean; "
           f"write_verilog -noattr {raw.name}", work)
    try:
        _yosys(f"read_verilog {raw.name}; hierarchy -top top; opt -full; opt_clean -purge; "
               f"write_verilog -noattr {opt.name}", work)
        optimised = opt.read_text()
    except RuntimeError:
        optimised = None
    return raw.read_text(), optimised


def _unread_outputs(work, il):
    """Output bits of the flow's cells that nothing reads (no cell input, no top-level
    output): ``{(cell, port, bit)}``. A mutation of such a bit cannot be observed: the
    bits an assignment cuts off (``c.eq(c - 1)`` computes one bit more than ``c`` holds)."""
    path = work / "original.json"
    _yosys(f"{FLOW.format(il=il.name)}; proc; write_json {path.name}", work)   # (muxes too)
    mod = json.loads(path.read_text())["modules"]["top"]
    ints = lambda bits: (b for b in bits if isinstance(b, int))    # not constants
    read = {b for p in mod["ports"].values() if p["direction"] != "input" for b in ints(p["bits"])}
    for cell in mod["cells"].values():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "output":
                read.update(ints(bits))
    return {(name, port, i) for name, cell in mod["cells"].items()
            for port, bits in cell["connections"].items()
            if cell["port_directions"].get(port) == "output"
            for i, b in enumerate(bits) if isinstance(b, int) and b not in read}


def _unread(mutation, unread):
    """Does ``mutation`` change only an output bit that nothing reads?"""
    m = re.search(r"-cell (\S+) -port (\S+) -portbit (\d+)", mutation)
    return bool(m) and (m.group(1), m.group(2), int(m.group(3))) in unread


def _sources_hash():
    h = hashlib.sha256()
    for folder in ("tb", "model", "lpu/contract", "lpu/host"):
        for p in sorted((ROOT / folder).glob("*.py")):
            h.update(p.read_bytes())
    h.update(Path(__file__).read_bytes())       # how a verdict is reached (units, checks)
    return h.hexdigest()


def _evaluate(config, preset_name, work, il, mutation, index, seed, base_opt, timeout, log,
              unread=False):
    name = f"m{index:04d}"
    rec = {"mutation": mutation, "index": index}
    loc = _source(mutation)
    if loc:
        rec["file"], rec["line"] = loc
    if unread:
        return {**rec, "status": "equivalent", "why": "the mutated bit drives nothing (cut off "
                                                     "by the assignment)"}
    try:
        text, opt = _netlist(work, il, mutation, name)
    except (RuntimeError, subprocess.SubprocessError) as e:
        return {**rec, "status": "stillborn", "why": f"yosys: {e}"}
    if opt is not None and opt == base_opt:
        return {**rec, "status": "equivalent", "why": "identical optimised netlist"}
    key = hashlib.sha256((text + _sources_hash() + preset_name + str(TB_SEED) + MUTANT_OPT)
                         .encode()).hexdigest()[:20]
    cache = MUTATE / "cache" / f"{key}.json"
    if cache.exists():
        return {**json.loads(cache.read_text()), **rec, "cached": True}
    result = {"status": "survived"}
    for tb in TESTBENCHES:
        try:
            res = run_testbench(tb, config, seed=TB_SEED, run_dir=work / "runs" / f"{name}-{tb}",
                                timeout=timeout, verilog=text, testcase=TESTCASE,
                                opt_fast=MUTANT_OPT, log=lambda s: None)
        except RuntimeError as e:           # Verilator could not build it
            result = {"status": "stillborn", "why": str(e).splitlines()[0]}
            break
        if not res.passed:
            result = {"status": "killed", "by": tb, "why": res.message[:200]}
            break
    unit = unit_mutation(mutation)
    if result["status"] == "survived" and unit:      # the unit's own testbench, as make sim
        design, unit_cmd = unit
        uil = _rtlil(config, work, design)
        try:
            utext, _ = _netlist(work, uil, unit_cmd, f"{name}-{design}")
        except (RuntimeError, subprocess.SubprocessError) as e:
            # the unit's netlist has every cell the tile has of it: a miss is a bug here
            raise RuntimeError(f"mutant {name}: cannot apply '{unit_cmd}' to the {design} "
                               f"netlist: {e}") from None
        res = run_testbench(design, config, seed=TB_SEED, timeout=timeout, verilog=utext,
                            run_dir=work / "runs" / f"{name}-{design}",
                            opt_fast=MUTANT_OPT, log=lambda s: None)
        if not res.passed:
            result = {"status": "killed", "by": design, "why": res.message[:200]}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result))
    log(f"  {name} {result['status']:<10} {rec.get('file', '?')}:{rec.get('line', '?')}")
    return {**rec, **result}


def _mutant_task(item):
    """One mutant, on any executor (a thread here, or a Dask worker): (record, log lines)."""
    preset_name, work, il, mutation, index, seed, base_opt, timeout, unread = item
    lines = []
    rec = _evaluate(preset(preset_name), preset_name, Path(work), Path(il), mutation, index,
                    seed, base_opt, timeout, lines.append, unread)
    return rec, lines


def run_mutation(preset_name="tiny", count=20, seed=1, jobs=None, timeout=300, mutations=None,
                 log=print, out=None, cluster=None):
    """Evaluate ``count`` seeded mutants (or the explicit ``mutations``); returns the report
    dict and writes ``report.json`` / ``report.md`` to ``out`` (default build/mutate)."""
    config = preset(preset_name)
    out = Path(out or MUTATE)
    work = out / f"work-{preset_name}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    il = _rtlil(config, work)
    base_text, base_opt = _netlist(work, il, None, "original")
    originals = [(tb, base_text, TESTCASE) for tb in TESTBENCHES]
    originals += [(d, _netlist(work, _rtlil(config, work, d), None, f"original-{d}")[0], None)
                  for d in UNITS.values()]
    for tb, text, testcase in originals:     # the flow itself must pass the regression
        res = run_testbench(tb, config, seed=TB_SEED, run_dir=work / "runs" / f"original-{tb}",
                            timeout=timeout, verilog=text, testcase=testcase,
                            opt_fast=MUTANT_OPT, log=lambda s: None)
        if not res.passed:
            raise RuntimeError(f"the un-mutated netlist fails the {tb} testbench: {res.message}")
    if mutations is None:
        mutations = mutation_candidates(config, work, count, seed)
    from .executor import make_executor
    executor = make_executor(cluster, jobs or os.cpu_count() or 1)
    where = f" on the Dask cluster {executor.name}" if cluster else ""
    log(f"mutate: {len(mutations)} mutants of the tile on {preset_name}, seed {seed}{where}")
    unread = _unread_outputs(work, il)
    items = [(preset_name, str(work), str(il), m, i, seed, base_opt, timeout,
              _unread(m, unread)) for i, m in enumerate(mutations)]
    results = [None] * len(items)
    try:
        for item, res, _info in executor.map_unordered(_mutant_task, items):
            if isinstance(res, Exception):      # a lost worker (twice), not a verdict
                raise RuntimeError(f"mutant {item[4]} could not be evaluated: {res}")
            results[item[4]], lines = res
            for line in lines:
                log(line)
    except KeyboardInterrupt:
        executor.cancel()
        executor.close()
        raise
    executor.close()
    types = _cell_types(work)
    counts = {k: sum(r["status"] == k for r in results)
              for k in ("killed", "survived", "equivalent", "stillborn")}
    decided = counts["killed"] + counts["survived"]
    report = {**counts, "score": counts["killed"] / decided if decided else None,
              "preset": preset_name, "seed": seed, "mutants": len(results),
              "testbenches": list(TESTBENCHES), "wall_s": round(time.monotonic() - t0, 1),
              "survivors": [{"file": r.get("file"), "line": r.get("line"),
                             "mutation": r["mutation"], "why": _why(r, types)} for r in results
                            if r["status"] == "survived"],
              "results": results}
    # survivors a person has shown equivalent (waivers.py: "equivalent ...") apart: the score
    # the regression would have if they were counted as equivalent
    argued = sum((s["why"] or "").startswith("equivalent") for s in report["survivors"])
    report["argued_equivalent"] = argued
    report["score_reviewed"] = (counts["killed"] / (decided - argued)) if decided > argued else None
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(report))
    from .plots import plot_mutation
    plot_mutation(report, out / "report.png")
    score = "n/a" if report["score"] is None else f"{report['score'] * 100:.1f} %"
    log(f"mutate: killed {counts['killed']}, survived {counts['survived']}, equivalent "
        f"{counts['equivalent']}, stillborn {counts['stillborn']}: score {score} "
        f"({report['wall_s']:.0f} s); {out / 'report.md'}")
    return report


def _cell_types(work):
    """Cell name -> Yosys cell type, from the original's netlist (``_unread_outputs``)."""
    mod = json.loads((Path(work) / "original.json").read_text())["modules"]["top"]
    return {name: cell["type"] for name, cell in mod["cells"].items()}


def _why(rec, types):
    """Why a survivor survives, where a person has worked it out (``lpu.tools.waivers``),
    matched on its source line, the mutation and the mutated cell's type."""
    from .waivers import mutant_reason
    if not rec.get("file"):
        return None
    text = (ROOT / rec["file"]).read_text().splitlines()[rec["line"] - 1]
    m = re.search(r"-cell (\S+)", rec["mutation"])
    return mutant_reason(text, rec["mutation"], types.get(m.group(1)) if m else None)


def _markdown(r):
    score = "n/a" if r["score"] is None else f"{r['score'] * 100:.1f} %"
    lines = ["# Mutation testing of the tile", "",
             f"Preset `{r['preset']}`, seed {r['seed']}, {r['mutants']} mutants, testbenches "
             f"{', '.join(r['testbenches'])}; {r['wall_s']:.0f} s.", "",
             "| killed | survived | equivalent | stillborn | score |", "|---|---|---|---|---|",
             f"| {r['killed']} | {r['survived']} | {r['equivalent']} | {r['stillborn']} | {score} |",
             ""]
    if r.get("score_reviewed") is not None:
        lines += [f"{r['argued_equivalent']} survivors are shown equivalent by hand (below); "
                  f"counted as equivalent, the score is {r['score_reviewed'] * 100:.1f} %.", ""]
    lines += ["## Survivors", ""]
    if not r["survivors"]:
        lines.append("None.")
    for s in r["survivors"]:
        lines.append(f"- `{s['file']}:{s['line']}`: `{s['mutation']}`\n"
                     f"  - why: {s.get('why') or 'not analysed (a gap in the regression?)'}")
    return "\n".join(lines) + "\n"
