"""The mutation-testing machinery itself (``lpu.tools.mutate``), on a small seeded sample:
a mutant that must die is reported killed, one that cannot change anything is reported
equivalent, and a report with every count, the score and the survivors' source lines is
written. (``make mutate`` runs the full sample; its numbers are in the README.)"""

import json

from lpu.contract.config import preset
from lpu.tools.mutate import mutation_candidates, run_mutation


def _select(work, filters):
    """The one mutation Yosys proposes for ``filters`` (a wire and bit): robust to cell
    renames, unlike a cell name."""
    cands = mutation_candidates(preset("tiny"), work, 1, 1, filters, located_only=False)
    assert cands, f"no mutation for {filters}"
    return cands[0]


def _cut_off_bit(work):
    """A mutation of a cell output bit nothing reads (``c.eq(c - 1)`` computes one bit more
    than ``c`` holds), and the tile's set of such bits."""
    from lpu.tools.mutate import _rtlil, _unread_outputs
    unread = _unread_outputs(work, _rtlil(preset("tiny"), work))
    assert unread, "the tiny tile has no cut-off bit: c.eq(c - 1) should make some"
    cell, port, bit = sorted(unread)[0]
    return _select(work, f"-mode inv -cell {cell} -port {port} -portbit {bit}"), unread


def test_mutants_on_a_dask_cluster(tmp_path):
    """`make mutate CLUSTER=local:2` (the mutants are jobs on the cluster's workers) on a
    known dead mutant, two known equivalent ones and a seeded sample of one, in one run (each
    run first passes the un-mutated netlists through the regression): a mutant that must die
    is killed; one that changes nothing, and one of a bit nothing reads (which runs no
    testbench), are equivalent, with their reasons; the seeded one is classified (a survivor
    carries its source line); the report holds every count and the score."""
    work = tmp_path / "work"
    work.mkdir()
    # host__rvalid inverted: every host read is seen one cycle off: must be killed
    dead = _select(work, "-mode inv -wire host__rvalid -wirebit 0")
    # a "mutation" that changes nothing (a Yosys command that only prints):
    # the equivalence check must see it. (A real mutant whose optimised netlist is identical
    # is rare in this design: 0 of 150 sampled, README)
    same = "log lpu: a netlist left unchanged"
    dead_bit, _ = _cut_off_bit(work)
    # what `make mutate COUNT=1 SEED=3` evaluates
    seeded = mutation_candidates(preset("tiny"), work, 1, 3)
    assert len(seeded) == 1
    report = run_mutation("tiny", mutations=[dead, same, dead_bit, *seeded], out=tmp_path,
                          seed=3, cluster="local:2", log=lambda _m: None)
    results = report["results"]
    assert [r["status"] for r in results[:3]] == ["killed", "equivalent", "equivalent"], results
    assert "drives nothing" in results[2]["why"], results[2]
    assert results[3]["status"] in ("killed", "survived", "equivalent", "stillborn"), results[3]
    saved = json.loads((tmp_path / "report.json").read_text())
    for key in ("killed", "survived", "equivalent", "stillborn", "score", "survivors"):
        assert key in saved
    assert saved["mutants"] == 4
    assert saved["killed"] + saved["survived"] + saved["equivalent"] + saved["stillborn"] == 4
    assert saved["killed"] >= 1 and saved["equivalent"] >= 2
    assert saved["score"] == saved["killed"] / (saved["killed"] + saved["survived"])
    for s in saved["survivors"]:
        assert s["file"].startswith("rtl/") and s["line"] > 0
    row = (f"| {saved['killed']} | {saved['survived']} | {saved['equivalent']} | "
           f"{saved['stillborn']} | {100 * saved['score']:.1f} % |")
    assert row in (tmp_path / "report.md").read_text()


def test_seeded_sample_is_reproducible_and_located(tmp_path):
    a = mutation_candidates(preset("tiny"), tmp_path, 5, 7)
    b = mutation_candidates(preset("tiny"), tmp_path, 5, 7)
    c = mutation_candidates(preset("tiny"), tmp_path, 5, 8)
    assert a == b and a != c and len(a) == 5
    assert all("-src" in m and "/rtl/" in m for m in a)


def test_unit_mutation_translation(tmp_path):
    """A mutant located in a unit also runs that unit's testbench: the same mutation applied
    to the unit's own netlist. Checked with Yosys itself (the oracle of cell names): real
    mutations from the tile's listing, in the VXM, in the MXM's array and in a bank's address
    generator (names nested two deep), each applies to its unit's netlist and changes it."""
    import re
    from lpu.tools.mutate import _netlist, _rtlil, unit_mutation
    cfg = preset("tiny")
    # (a sample large enough to hold inversions in every unit: 300 held none in the address
    # generators once the sequencer's performance counters shrank; 1,000 hold 12)
    cands = mutation_candidates(cfg, tmp_path, 1000, 5)
    picked = {}
    # inversions: a constant forced onto a port that already holds it (``-mode const1`` on
    # a compare's constant operand) changes nothing, in the unit's netlist or the tile's
    for inst, pattern in (("vxm", r"-cell \$flatten\\vxm\.\$"),
                          ("mxm", r"-cell \$flatten\\mxm\.\\\w+\."),
                          ("mem", r"-cell \$flatten\\mem\.\\bank\d\.\\agen\.")):
        picked[inst] = next(c for c in cands if re.search(pattern, c) and "-mode inv " in c)
    assert unit_mutation(r"mutate -mode inv -module top -cell $flatten\seq.$5 -port Q") is None
    for cmd in picked.values():
        design, unit_cmd = unit_mutation(cmd)
        il = _rtlil(cfg, tmp_path, design)
        original, _ = _netlist(tmp_path, il, None, f"orig-{design}")
        mutant, _ = _netlist(tmp_path, il, unit_cmd, f"mut-{design}")   # raises if not found
        assert mutant != original, f"{unit_cmd} left the {design} netlist unchanged"


def test_bits_nothing_reads_are_equivalent(tmp_path):
    """The bits no cell reads (a bit the assignment cuts off, as ``c.eq(c - 1)`` computes one
    bit more than ``c`` holds) are found, a mutation of one is flagged (the Dask test above
    runs one: equivalent, no testbench), and a bit the tile's outputs depend on is not."""
    from lpu.tools.mutate import _unread
    work = tmp_path / "work"
    work.mkdir()
    dead_bit, unread = _cut_off_bit(work)
    assert _unread(dead_bit, unread), dead_bit
    # a seeded sample is mostly live bits (how many are cut off depends on the netlist,
    # so the sample is not relied on to hold one)
    cands = mutation_candidates(preset("tiny"), work, 200, 7)
    cut = [m for m in cands if _unread(m, unread)]
    assert len(cut) < len(cands) // 4, f"{len(cut)} of {len(cands)} flagged"
    live = _select(work, "-mode inv -wire host__rvalid -wirebit 0")
    assert not _unread(live, unread)
