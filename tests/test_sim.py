"""The cocotb testbenches under Verilator, every testbench on every preset but those ``MATRIX``
leaves to `make sim` (one seed each; `make sim` runs more), and the `sim` back end of `lpu gemm` against the `model` back end."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lpu.contract.config import PRESETS, preset
from lpu.tools.regression import ICARUS_PRESETS
from lpu.tools.simulation import BUILD, TESTBENCHES, run_testbench

SEED = int(os.environ.get("LPU_TEST_SEED", "20261127"))


# every testbench on every preset, less two groups for make test's 25-minute budget (make sim
# runs them all): of "default", which differs from "ulx3s" only in its parameter memory (64
# rows, not 16), only the tile's, which drives every unit and checks every output word and
# event against the model, and that in `make test-heavy` (86 s; "ulx3s"'s tile runs here);
# of "large" (16 lanes: the slowest to build and to run), only the MXM's: its 16 x 16 array,
# 132 of whose products are built from logic
ONLY = {"default": "tile", "large": "mxm"}
HEAVY = {"default"}
MATRIX = [pytest.param(bench, name, marks=[pytest.mark.heavy] if name in HEAVY else [])
          for name in PRESETS for bench in TESTBENCHES
          if bench != "chip" and ONLY.get(name, bench) == bench]


@pytest.mark.parametrize("bench,name", MATRIX)
def test_testbench(bench, name):
    res = run_testbench(bench, preset(name), seed=SEED,
                        run_dir=BUILD / "sim" / "pytest" / f"{bench}-{name}-{SEED}")
    assert res.passed, (f"{bench} on {name} failed: {res.message}\n  log: {res.log}\n"
                        f"  rerun: make sim TEST={bench} CONFIG={name} SEED={SEED} WAVES=1")


# of "default" and "large", the tile testbench runs in make test (MATRIX)
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy)
                                  if n in ("default", "large") else n for n in PRESETS])
def test_gemm_backends_agree(name, tmp_path):
    """`lpu gemm` on model and sim: identical bytes and cycle counts, quantised and not."""
    rng = np.random.default_rng(SEED)
    L = preset(name).lanes
    cases = [(1, 1, 1), (int(rng.integers(1, 3 * L)), 2 * L + 1, 7), (13, 5, 3 * L - 1)]
    for i, (M, K, N) in enumerate(cases):
        np.save(tmp_path / "A.npy", rng.integers(-128, 128, (M, K), dtype=np.int8))
        np.save(tmp_path / "B.npy", rng.integers(-128, 128, (K, N), dtype=np.int8))
        np.save(tmp_path / "bias.npy", rng.integers(-5000, 5000, N).astype(np.int32))
        (tmp_path / "q.json").write_text(json.dumps({
            "multiplier": [int(x) for x in rng.integers(1 << 29, 1 << 31, N)],
            "shift": int(rng.integers(-9, 1)), "input_zero_point": 3,
            "output_zero_point": -7, "activation_min": -120, "activation_max": 110}))
        for extra in ([], ["--quant", "q.json"]):
            lines = {}
            for backend in ("model", "sim"):
                r = subprocess.run([sys.executable, "-m", "lpu", "gemm", "A.npy", "B.npy", "-o",
                                    f"{backend}.npy", "--bias", "bias.npy", "--config", name,
                                    "--backend", backend] + extra,
                                   cwd=tmp_path, capture_output=True, text=True, timeout=900)
                assert r.returncode == 0, r.stderr
                lines[backend] = r.stdout.strip().split(": ", 1)[1]
            a = (tmp_path / "model.npy").read_bytes()
            b = (tmp_path / "sim.npy").read_bytes()
            assert a == b, f"case {i} {M}x{K}x{N} {extra}: model and sim outputs differ"
            assert lines["model"] == lines["sim"], lines      # same cycle count line


def _testbench_stats(run_dir):
    """What each test measured itself (cycles counted on the clock, vectors checked)."""
    path = run_dir / "stats.jsonl"
    return sorted(path.read_text().splitlines()) if path.exists() else []


# the tile's 65,536-cycle counter test took half of its Icarus run (55 of 116 s); the tile
# testbench runs it under Verilator (tiny, ulx3s and icebreaker here), and `make sim SIM=icarus`
# runs it too
ICARUS_FILTER = {"tile": r"^(?!.*\.test_counters_past_16_bits$)"}


@pytest.mark.skipif(shutil.which("iverilog") is None,
                    reason="iverilog not installed and not installable here (make test installs it as root)")
# `make test` cross-checks on tiny (the default preset's Icarus runs took minutes of its
# 25-minute budget); `make sim SIM=icarus` runs every preset of ICARUS_PRESETS
# (the bridge's Icarus run, a minute of make test's budget: `make test-heavy`)
@pytest.mark.parametrize("name", ICARUS_PRESETS[:1])
@pytest.mark.parametrize("bench", [pytest.param(b, marks=pytest.mark.heavy) if b == "bridge" else b
                                   for b in TESTBENCHES if b != "chip"])
def test_icarus_cross_check(bench, name):
    """The same cocotb tests on Icarus Verilog: each passes against the model (every vector,
    every cycle), and every test measures the same cycle and vector counts as under Verilator."""
    runs = {}
    for sim in ("verilator", "icarus"):
        res = run_testbench(bench, preset(name), seed=SEED, sim=sim, testcase=ICARUS_FILTER.get(bench),
                            run_dir=BUILD / "sim" / "pytest" / f"{bench}-{name}-{SEED}-{sim}")
        assert res.passed, (f"{bench} on {name} under {sim} failed: {res.message}\n  log: {res.log}\n"
                            f"  rerun: make sim TEST={bench} CONFIG={name} SEED={SEED} SIM={sim} WAVES=1")
        runs[sim] = _testbench_stats(res.results_xml.parent)
    assert runs["verilator"], "the testbench recorded no statistics"
    assert runs["verilator"] == runs["icarus"], f"the simulators disagree: {runs}"


def test_tile_with_more_banks_than_int32_planes():
    """Every preset has 4 banks, where each int32 VX writes all of them; `banks` goes to 16.
    An 8-bank tile (tiny otherwise) runs the random legal programs, whose int32 VXs then
    write 4 of the 8 banks, chosen by the instruction's bank: every word of every bank is
    checked against the model."""
    from dataclasses import replace
    cfg = replace(preset("tiny"), banks=8)
    run_dir = BUILD / "test-runs" / "tile-8-banks"
    res = run_testbench("tile", cfg, seed=SEED, run_dir=run_dir,
                        testcase="test_random_legal_programs")
    assert res.passed and res.tests == 1, (f"tile with 8 banks failed: {res.message}\n"
                                           f"  log: {res.log}")


@pytest.mark.parametrize("name,latency", [("tiny*2", 1), ("tiny*4", 1),
                                          pytest.param("tiny*2", 7, marks=pytest.mark.heavy)])
def test_chip(name, latency):
    """The chip testbench (layer chains over the links, every event of every tile on its
    cycle; races refused) on 2 and 4 tiles, and with a long (chip-to-chip) link."""
    from dataclasses import replace
    cfg = replace(preset(name), link_latency=latency)
    run_dir = BUILD / "test-runs" / f"chip-{name.replace('*', 'x')}-l{latency}"
    res = run_testbench("chip", cfg, seed=SEED, run_dir=run_dir)
    from lpu.tools import regression
    chip_tests = sum("chip" in tbs for tbs in regression._testcases().values())
    assert res.passed and res.tests == chip_tests, (f"chip {name} latency {latency} failed: "
                                           f"{res.message}\n  log: {res.log}")
