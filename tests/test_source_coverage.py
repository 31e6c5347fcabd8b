"""Source-line coverage (``lpu.tools.source_coverage``, ``make coverage``): Verilator's points
mapped back to the Amaranth lines in ``rtl/`` they come from."""

import json
import re

from lpu.tools.simulation import ROOT
from lpu.tools.source_coverage import map_points, run_source_coverage, verilog_sources

VERILOG = f'''module top(clk, a, y);
  (* src = "{ROOT}/rtl/vector_unit.py:10" *)
  input clk;
  (* src = "{ROOT}/rtl/vector_unit.py:11" *)
  input [3:0] a;
  (* src = "{ROOT}/rtl/sequencer.py:12" *)
  reg [3:0] count = 4'h0;
  wire \\$1 ;
  assign \\$1  = a + (* src = "{ROOT}/rtl/sequencer.py:13" *) count;
  always @(posedge clk)
    count <= \\$1 ;
  always @* begin
    if (\\$1 ) begin
      y = 1'h1;
    end
  end
  (* src = "/elsewhere/lib.py:5" *)
  wire y;
endmodule
'''


def _line(text, needle):
    return next(n for n, s in enumerate(text.splitlines(), 1) if needle in s)


def test_verilog_lines_map_to_their_amaranth_source():
    src = verilog_sources(VERILOG)
    assert src[_line(VERILOG, "reg [3:0] count")] == "rtl/sequencer.py:12"      # declaration
    assert src[_line(VERILOG, "input [3:0] a")] == "rtl/vector_unit.py:11"
    assert src[_line(VERILOG, "count <= ")] == "rtl/sequencer.py:12"            # its register
    assert src[_line(VERILOG, "if (")] == "rtl/sequencer.py:13"        # an expression's wire
    assert src[_line(VERILOG, "wire y")] is None                       # not in rtl/


def test_points_are_counted_per_source_line():
    decl = _line(VERILOG, "reg [3:0] count")
    cond = _line(VERILOG, "if (")
    f = lambda **kv: {"page": f"v_{kv.pop('kind')}/top", **kv}
    points = [(f(kind="toggle", l=str(decl), o="count[3]:0->1", h="top"), 0),
              (f(kind="toggle", l=str(decl), o="count[0]:0->1", h="top"), 7),
              (f(kind="toggle", l=str(decl), o="__0241[0]:0->1", h="top"), 0),   # anonymous
              (f(kind="branch", l=str(cond), o="if", h="top"), 3),
              (f(kind="line", l="1", o="block", h="top"), 1)]                 # no rtl source
    per_line, unmapped = map_points(points, VERILOG)
    assert per_line["rtl/sequencer.py:12"] == {"points": 2, "hit": 1,
                                               "missed": ["toggle count[3]:0->1"]}
    assert per_line["rtl/sequencer.py:13"] == {"points": 1, "hit": 1, "missed": []}
    assert unmapped == 1


def test_vxm_testbench_coverage(tmp_path):
    """The VXM's random test under coverage: its points land on rtl/vector_unit.py, and the
    rounding code's upper bits, which the contract never sets (the code is 0, single, or 1,
    double, in each lane's 8-bit copy), are reported as never toggled on the line that
    declares the unit's ports."""
    s = run_source_coverage(("tiny",), ["vxm"], testcase="test_requant_random", out=tmp_path,
                            log=lambda _m: None)
    assert json.loads((tmp_path / "report.json").read_text())["lines"] == s["lines"]
    d = s["designs"]["vxm/tiny"]
    assert d["points"] > 1000 and d["hit"] / d["points"] > 0.9
    assert set(s["files"]) <= {"rtl/vector_unit.py", "rtl/interfaces.py", "rtl/delay.py",
                             "rtl/primitives.py"}
    params = _line((ROOT / "rtl/vector_unit.py").read_text(), "super().__init__(self.ports(")
    missed = {u["line"]: u for u in s["uncovered"]}
    entry = missed[f"rtl/vector_unit.py:{params}"]
    bits = [int(b) for m in entry["missed"] for b in re.findall(r"i_params\.rounding\[(\d+)\]:0->1", m)]
    assert bits and all(b % 8 != 0 for b in bits), entry["missed"]    # never bit 0 of a copy
    assert "rtl/vector_unit.py" in (tmp_path / "report.md").read_text()


def test_reasons_explain_only_what_they_match():
    from lpu.tools.waivers import coverage_reason, mutant_reason
    assert "performance counters" in coverage_reason(["toggle seq.count_cycles[13]:0->1"])
    both = coverage_reason(["toggle vxm.ovf0:0->1", "toggle seq.counters[108]:1->0"])
    assert "SRDHM" in both and "performance counters" in both
    # one point nobody explained leaves the line unexplained
    assert coverage_reason(["toggle seq.count_cycles[13]:0->1", "toggle seq.guard1[8]:0->1"]) \
        is None
    assert coverage_reason([]) is None
    cut = "mutate -mode const1 -module top -cell $x -port Y -portbit 2 -src rtl/sequencer.py:1"
    assert "cut off" in mutant_reason("m.d.sync += vx_pass.eq(vx_pass + 1)", cut)
    low = cut.replace("-portbit 2", "-portbit 0")
    assert mutant_reason("m.d.sync += vx_pass.eq(vx_pass + 1)", low) is None
