"""Source-line coverage of the Amaranth RTL: where did the regression's stimulus never go?

Verilator counts line, branch and toggle coverage points (``--coverage-line
--coverage-toggle``) on the Verilog that Amaranth emits with ``(* src = "rtl/x.py:N" *)``
attributes; every run writes ``coverage.dat``. This module maps each point back to the
Amaranth source line it comes from:

* a Verilog line with a ``src`` attribute of its own (a declaration's, an expression's) maps
  to that attribute's first ``rtl/`` location;
* a statement (an assignment, an ``if``/``case`` on a signal) maps to the source of the signal
  it names first: where the signal was declared (``Signal(...)``) or, for Yosys's anonymous
  expression wires, where the expression was written;
* toggle points count only for named signals (Amaranth ``Signal``s): the anonymous wires of
  expressions have bits that are constant by construction (``x * 32``'s low bits), which
  would drown the report in noise.

A point is *hit* when its count is at least 1. A source line is *covered* in a design when
all its points are hit; over the regression, a line counts as covered when some design's
testbench covers it (for example ``rtl/vector_unit.py`` by the VXM's own testbench), and the
report lists every ``rtl/`` line no testbench covers, with the points it misses (a bit that
never toggles, a branch never taken).
"""

import json
import re
from collections import defaultdict
from pathlib import Path

from .simulation import ROOT

__all__ = ["read_coverage_dat", "verilog_sources", "map_points", "summarise", "markdown",
           "run_source_coverage", "COVERAGE"]

_SRC = re.compile(r'\(\*\s*src\s*=\s*"([^"]+)"\s*\*\)')
_DECL = re.compile(r"^\s*(?:wire|reg|input|output|inout)\b(?:\s+signed)?(?:\s*\[[^\]]+\])?\s*"
                   r"(\\\S+|[A-Za-z_][\w$]*)")
_ASSIGN = re.compile(r"^\s*assign\s+(\\\S+|[A-Za-z_][\w$]*)")
_IDENT = re.compile(r"\\\S+|[A-Za-z_][\w$]*")
_KEYWORDS = {"if", "else", "begin", "end", "casez", "case", "endcase", "always", "posedge",
             "assign", "default", "initial", "module", "endmodule", "full_case", "src"}


def read_coverage_dat(path):
    """Verilator's ``coverage.dat``: a list of (fields, count); fields are its key/values
    (``f`` file, ``l`` line, ``page`` kind/module, ``o`` the point, ``h`` hierarchy)."""
    points = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.startswith("C '"):
            continue
        body, _, count = line[3:].rpartition("' ")
        fields = dict(kv.split("\x02", 1) for kv in body.split("\x01") if "\x02" in kv)
        points.append((fields, int(count)))
    return points


def _rtl_location(src):
    """The first ``rtl/`` location of a ``src`` attribute (``a.py:1|b.py:2``), relative."""
    for loc in src.split("|"):
        path, _, line = loc.rpartition(":")
        line = line.split(".")[0]
        try:
            rel = Path(path).resolve().relative_to(ROOT)
        except ValueError:
            continue
        if rel.parts and rel.parts[0] == "rtl" and line.isdigit():
            return f"{rel}:{int(line)}"
    return None


def verilog_sources(text):
    """Map every line (1-based) of Amaranth's Verilog to its ``rtl/`` source line, or None."""
    lines = text.splitlines()
    signal_src = {}                     # (module, signal) -> source: names are per module
    pending = None                      # attribute lines just above a declaration
    module = None
    for raw in lines:
        s = raw.strip()
        if s.startswith("module "):
            module = s.split()[1].split("(")[0]
        m = _SRC.fullmatch(s)
        if m:
            pending = pending or _rtl_location(m.group(1))
            continue
        decl = _DECL.match(raw)
        if decl and pending:
            signal_src.setdefault((module, decl.group(1)), pending)
        assign = _ASSIGN.match(raw)
        if assign:
            inline = [_rtl_location(x) for x in _SRC.findall(raw)]
            inline = next((x for x in inline if x), None)
            if inline:
                signal_src.setdefault((module, assign.group(1)), inline)
        if not s.startswith("(*"):
            pending = None if not s.startswith("always") else pending
    out = {}
    above = None
    module = None
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if s.startswith("module "):
            module = s.split()[1].split("(")[0]
        own = next((x for x in map(_rtl_location, _SRC.findall(raw)) if x), None)
        if _SRC.fullmatch(s):
            above = own or above
            out[n] = own
            continue
        loc = own
        if s.startswith(("module", "endmodule")):
            out[n] = None
            continue
        if loc is None:
            decl = _DECL.match(raw)
            names = [decl.group(1)] if decl else [t for t in _IDENT.findall(_SRC.sub("", s))
                                                  if t not in _KEYWORDS]
            loc = next((signal_src[(module, t)] for t in names if (module, t) in signal_src),
                       None)
        if loc is None and above and not s.startswith(("wire", "reg", "assign", "module")):
            loc = above
        out[n] = loc
        if not s.startswith("always"):
            above = None
    return out


def _unescape(name):
    """Verilator's escaped identifiers (``__02e`` is ``.``, ``__024`` is ``$``)."""
    return re.sub(r"__0([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), name)


def _kind(fields):
    return fields.get("page", "").split("/")[0].removeprefix("v_")


def map_points(dat_points, verilog_text):
    """Per ``rtl/`` source line: ``{"points": n, "hit": n, "missed": [descriptions]}``.
    Points that map to no ``rtl/`` line (the wrapper, anonymous expression bits) are left out;
    ``unmapped`` counts them."""
    src = verilog_sources(verilog_text)
    per_line = defaultdict(lambda: {"points": 0, "hit": 0, "missed": []})
    unmapped = 0
    for fields, count in dat_points:
        kind = _kind(fields)
        point = fields.get("o", "")
        if kind == "toggle" and point.startswith("__024"):   # anonymous wire ($N)
            continue
        loc = src.get(int(fields.get("l", 0)))
        if loc is None:
            unmapped += 1
            continue
        entry = per_line[loc]
        entry["points"] += 1
        if count > 0:
            entry["hit"] += 1
        else:
            # the hierarchy below the top (and the clocked wrapper's ``core`` instance)
            parts = _unescape(fields.get("h", "")).split(".")[1:]
            where = "".join(f"{p}." for p in parts[parts[:1] == ["core"]:])
            entry["missed"].append(f"toggle {where}{_unescape(point)}" if kind == "toggle" else
                                   f"{kind} {where}{point} (Verilog line {fields.get('l')})")
    return dict(per_line), unmapped


def merge_runs(dat_files):
    """Sum the counts of the same points over several runs of one build."""
    total, order = {}, []
    for f in dat_files:
        for fields, count in read_coverage_dat(f):
            key = tuple(sorted(fields.items()))
            if key not in total:
                order.append((key, fields))
                total[key] = 0
            total[key] += count
    return [(fields, total[key]) for key, fields in order]


def summarise(designs):
    """``designs``: {design: (per_line, unmapped)} from :func:`map_points`. The regression's
    summary: per design, and over all designs per source line (covered if some design covers
    it), every line no design covers with its misses (from the design that misses least)."""
    out = {"designs": {}, "files": {}, "uncovered": []}
    best = {}
    for design, (per_line, unmapped) in sorted(designs.items()):
        pts = sum(e["points"] for e in per_line.values())
        hit = sum(e["hit"] for e in per_line.values())
        full = sum(e["hit"] == e["points"] for e in per_line.values())
        out["designs"][design] = {
            "points": pts, "hit": hit, "lines": len(per_line), "lines_covered": full,
            "percent": round(100.0 * hit / pts, 2) if pts else 100.0, "unmapped": unmapped}
        for loc, e in per_line.items():
            if loc not in best or len(e["missed"]) < len(best[loc]["missed"]):
                best[loc] = {**e, "design": design}
    files = defaultdict(lambda: {"lines": 0, "lines_covered": 0})
    for loc, e in sorted(best.items(), key=lambda kv: _loc_key(kv[0])):
        f = files[loc.rpartition(":")[0]]
        f["lines"] += 1
        if not e["missed"]:
            f["lines_covered"] += 1
        else:
            from .waivers import coverage_reason
            out["uncovered"].append({"line": loc, "design": e["design"],
                                     "missed": e["missed"][:8], "missed_count": len(e["missed"]),
                                     "why": coverage_reason(e["missed"])})
    for f in files.values():
        f["percent"] = round(100.0 * f["lines_covered"] / f["lines"], 1)
    out["files"] = dict(sorted(files.items()))
    lines = sum(f["lines"] for f in files.values())
    covered = sum(f["lines_covered"] for f in files.values())
    out.update(lines=lines, lines_covered=covered,
               percent=round(100.0 * covered / lines, 2) if lines else 100.0,
               justified=sum(u["why"] is not None for u in out["uncovered"]))
    return out


def _loc_key(loc):
    path, _, line = loc.rpartition(":")
    return path, int(line)


def markdown(summary, title="Source-line coverage of the RTL"):
    lines = [f"# {title}", "",
             f"{summary['lines_covered']} of {summary['lines']} `rtl/` source lines with "
             f"coverage points are fully covered ({summary['percent']} %).", "",
             "| design | points hit | lines fully covered |", "|---|---|---|"]
    for d, s in summary["designs"].items():
        lines.append(f"| {d} | {s['hit']}/{s['points']} ({s['percent']} %) | "
                     f"{s['lines_covered']}/{s['lines']} |")
    lines += ["", "| file | lines fully covered |", "|---|---|"]
    for f, s in summary["files"].items():
        lines.append(f"| `{f}` | {s['lines_covered']}/{s['lines']} ({s['percent']} %) |")
    lines += ["", "## Lines no testbench covers", "",
              f"{summary.get('justified', 0)} of {len(summary['uncovered'])} explained "
              f"(`lpu/tools/waivers.py`); the rest are not analysed yet.", ""]
    if not summary["uncovered"]:
        lines.append("None.")
    for u in summary["uncovered"]:
        more = u["missed_count"] - len(u["missed"])
        lines.append(f"- `{u['line']}` ({u['design']}): " + "; ".join(u["missed"])
                     + (f"; and {more} more" if more > 0 else "")
                     + f"\n  - why: {u.get('why') or 'not analysed'}")
    return "\n".join(lines) + "\n"


def write_report(summary, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out_dir / "report.md").write_text(markdown(summary))
    from .plots import plot_source_coverage
    plot_source_coverage(summary, out_dir / "report.png")
    return out_dir / "report.md"


COVERAGE = Path(__file__).resolve().parents[2] / "build" / "coverage"
SEED = 1000                          # the testbench seed `make sim` runs first


def run_source_coverage(presets=("tiny",), designs=None, *, testcase=None, jobs=None,
                        timeout=900, log=print, out=None):
    """Run each design's testbench once per preset on a coverage build, map the points to
    ``rtl/`` lines, write ``report.json``/``report.md`` in ``out`` (build/coverage); returns
    the summary. A failing testbench makes the figure meaningless: it raises."""
    import os
    from concurrent.futures import ThreadPoolExecutor
    from ..contract.config import preset
    from .simulation import TESTBENCHES, build, run_testbench
    designs = list(designs or [d for d in TESTBENCHES if d != "chip"])   # a chip = tiles
    out = Path(out or COVERAGE)
    pairs = [(d, p) for p in presets for d in designs]

    def one(pair):
        design, name = pair
        config = preset(name)
        res = run_testbench(design, config, seed=SEED, run_dir=out / "runs" / f"{design}-{name}",
                            coverage=True, testcase=testcase, timeout=timeout, log=log)
        if not res.passed:
            raise RuntimeError(f"{design} on {name} failed under coverage: {res.message}")
        verilog = (build(design, config, coverage=True, log=log) / "top.v").read_text()
        log(f"coverage: {design} on {name}: {res.tests} tests, {res.wall:.1f} s")
        return f"{design}/{name}", map_points(read_coverage_dat(res.log.parent / "coverage.dat"),
                                              verilog)

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        designs_cov = dict(pool.map(one, pairs))
    summary = summarise(designs_cov)
    summary.update(presets=list(presets), seed=SEED)
    path = write_report(summary, out)
    log(f"source coverage: {summary['lines_covered']}/{summary['lines']} rtl lines fully "
        f"covered ({summary['percent']} %), {len(summary['uncovered'])} not: {path}")
    return summary
