"""The `lpu` command's contract: `lpu gemm` results, and one-line errors with exit code 2
that write nothing."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from lpu.host.cli import main
from lpu.host.compiler import Quant
from model.gemm import reference_gemm


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.integers(-128, 128, (7, 13), dtype=np.int8)
    B = rng.integers(-128, 128, (13, 5), dtype=np.int8)
    bias = rng.integers(-1000, 1000, 5).astype(np.int32)
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "B.npy", B)
    np.save(tmp_path / "bias.npy", bias)
    q = {"multiplier": [1 << 30] * 5, "shift": -3, "output_zero_point": 4,
         "input_zero_point": -2, "activation_min": -100, "activation_max": 100}
    (tmp_path / "q.json").write_text(json.dumps(q))
    return tmp_path, A, B, bias, q


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_gemm_int32(files, capsys):
    d, A, B, bias, _ = files
    code, out, err = run(["gemm", d / "A.npy", d / "B.npy", "-o", d / "o.npy", "--bias", d / "bias.npy"], capsys)
    assert code == 0, err
    got = np.load(d / "o.npy")
    assert got.dtype == np.int32 and got.shape == (7, 5)
    np.testing.assert_array_equal(got, reference_gemm(A, B, bias))
    assert "cycles" in out and "utilisation" in out


@pytest.mark.parametrize("rounding", [None, "single", "double"])
def test_gemm_quant(files, capsys, rounding):
    """QUANT.json's ``rounding``: single when absent (what LiteRT does today), or double."""
    d, A, B, bias, q = files
    if rounding:
        (d / "q.json").write_text(json.dumps({**q, "rounding": rounding}))
    code, out, err = run(["gemm", d / "A.npy", d / "B.npy", "-o", d / "o.npy", "--bias",
                          d / "bias.npy", "--quant", d / "q.json", "--config", "tiny"], capsys)
    assert code == 0, err
    quant = Quant(np.array(q["multiplier"]), np.full(5, -3), 4, -2, -100, 100,
                  rounding or "single")
    got = np.load(d / "o.npy")
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, reference_gemm(A, B, bias, quant))
    other = Quant(**{**quant.__dict__, "rounding": "double" if quant.rounding == "single" else "single"})
    assert not np.array_equal(reference_gemm(A, B, bias, other), got), "the two roundings agree here"


BAD = [
    (["gemm", "missing.npy", "B.npy"], r"A file 'missing.npy' not found"),
    (["gemm", "notnpy.txt", "B.npy"], r"A file 'notnpy.txt' is not a readable .npy file"),
    (["gemm", "A16.npy", "B.npy"], r"A must have dtype int8, got int16"),
    (["gemm", "A3.npy", "B.npy"], r"A must have rank 2, got shape \(2, 2, 2\)"),
    (["gemm", "A.npy", "Bk.npy"], r"K mismatch: A is 7x13, B is 12x5"),
    (["gemm", "A.npy", "B.npy", "--bias", "bias4.npy"], r"BIAS has 4 values, N is 5"),
    (["gemm", "A.npy", "B.npy", "--bias", "bias64.npy"], r"BIAS must have dtype int32, got int64"),
    (["gemm", "A.npy", "B.npy", "--quant", "qlen.json"], r"quant key 'multiplier' has 3 values, N is 5"),
    (["gemm", "A.npy", "B.npy", "--quant", "qkey.json"], r"unknown quant key 'scale'"),
    (["gemm", "A.npy", "B.npy", "--quant", "qshift.json"], r"quant key 'shift' value 31 is out of range \[-31, 30\]"),
    (["gemm", "A.npy", "B.npy", "--quant", "qmult.json"], r"quant key 'multiplier' value -1 is out of range"),
    (["gemm", "A.npy", "B.npy", "--quant", "qzp.json"], r"quant key 'output_zero_point' value 128 is out of range"),
    (["gemm", "A.npy", "B.npy", "--quant", "qminmax.json"], r"activation_min 10 > activation_max 5"),
    (["gemm", "A.npy", "B.npy", "--quant", "qmissing.json"], r"quant key 'shift' is missing"),
    (["gemm", "A.npy", "B.npy", "--quant", "qbad.json"], r"quant file 'qbad.json' is not valid JSON"),
    (["gemm", "A.npy", "B.npy", "--quant", "qfloat.json"], r"quant key 'multiplier' must be an integer, got 1.5"),
    (["gemm", "A.npy", "B.npy", "--quant", "qround.json"], r"quant key 'rounding' must be one of \"single\", \"double\", got \"up\""),
    (["gemm", "A.npy", "B.npy", "--config", "huge"], r"unknown preset 'huge'"),
    (["gemm", "A.npy", "B.npy", "--backend", "gpu"], r"unknown backend 'gpu'"),
    (["gemm", "A.npy"], r"the following arguments are required"),
    (["gemm", "A.npy", "B.npy", "Bk.npy", "--quant", "q5.json,q5.json"],
     r"K mismatch: B1 gives 5 columns, B2 is 12x5"),
    (["gemm", "A.npy", "B.npy", "B5.npy", "--quant", "q5.json"],
     r"--quant names 1 file\(s\) for 2 B matrices \(one per B, comma-separated\)"),
    (["gemm", "A.npy", "B.npy", "B5.npy", "--quant", "q5.json,q5.json", "--bias", "bias4.npy"],
     r"--bias names 1 file\(s\) for 2 B matrices"),
    (["gemm", "A.npy", "B.npy", "--tiles", "2"],
     r"a chain of GEMMs streams int8 between its layers: every B needs its --quant \(none for B1\)"),
    (["gemm", "A.npy", "B.npy", "--tiles", "2", "--quant", "q5.json"],
     r"1 layers \(1 N tiles of 8 output channels\) for a chip of 2 tiles: no placement"),
    (["gemm", "A.npy", "B.npy", "B5.npy", "--quant", "q5.json,q5.json", "--tiles", "17"],
     r"config field 'tiles'"),
    (["gemm", "A.npy", "B.npy", "B5.npy", "--quant", "q5.json,q5.json", "--backend", "fpga"],
     r"a chip runs on the model or sim back end, not 'fpga'"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[m[:30] for _, m in BAD])
def test_gemm_wrong(files, capsys, monkeypatch, argv, message):
    d = files[0]
    monkeypatch.chdir(d)
    np.save("A16.npy", np.zeros((2, 2), np.int16))
    np.save("A3.npy", np.zeros((2, 2, 2), np.int8))
    np.save("Bk.npy", np.zeros((12, 5), np.int8))
    np.save("B5.npy", np.zeros((5, 5), np.int8))
    (d / "q5.json").write_text(json.dumps({"multiplier": 1 << 30, "shift": -3}))
    np.save("bias4.npy", np.zeros(4, np.int32))
    np.save("bias64.npy", np.zeros(5, np.int64))
    (d / "notnpy.txt").write_text("hello")
    base = {"multiplier": 1 << 30, "shift": 0}
    for name, extra in [("qlen", {"multiplier": [1, 2, 3]}), ("qkey", {"scale": 1}),
                        ("qshift", {"shift": 31}), ("qmult", {"multiplier": -1}),
                        ("qzp", {"output_zero_point": 128}),
                        ("qminmax", {"activation_min": 10, "activation_max": 5}),
                        ("qfloat", {"multiplier": 1.5}), ("qround", {"rounding": "up"})]:
        (d / f"{name}.json").write_text(json.dumps({**base, **extra}))
    (d / "qmissing.json").write_text(json.dumps({"multiplier": 5}))
    (d / "qbad.json").write_text("{nope")
    code, out, err = run(argv + ["-o", "OUT.npy"] if "-o" not in argv and len(argv) > 2 else argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message, lines[0]), lines[0]
    assert not (d / "OUT.npy").exists()
    assert "Traceback" not in err


def test_cli_exit_code_and_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lpu", "gemm", "nope.npy", "nope.npy", "-o",
                        str(tmp_path / "o.npy")], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: A file 'nope.npy' not found"
    assert not (tmp_path / "o.npy").exists()


def test_configs_lists_presets(capsys):
    code, out, _ = run(["configs"], capsys)
    assert code == 0
    for name in ("tiny", "default", "large"):
        assert name in out


def test_bitstream_unknown_board(capsys):
    code, out, err = run(["bitstream", "--board", "arty"], capsys)
    assert code == 1
    assert err.strip() == "error: unknown board 'arty' (choose: icebreaker, ulx3s)"


@pytest.mark.parametrize("argv,message", [
    (["--board", "icebreaker", "--mhz", "50"], "the icebreaker tile runs from the board's clock: no --mhz"),
    (["--board", "ulx3s", "--mhz", "0"], "--mhz must be > 0, got 0.0"),
    (["--board", "ulx3s", "--minutes", "0"], "--minutes must be > 0, got 0"),
    (["--board", "ulx3s", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--board", "ulx3s", "--seed", "3", "--pnr-opts=--seed 4"],
     "--seed is given twice: as --seed and in --pnr-opts"),
    (["--board", "ulx3s", "--seed", "3", "--synth-only"],
     "--seed is nextpnr's placer seed: --synth-only runs no nextpnr"),
    (["--board", "ulx3s", "--config", "huge"], "unknown preset 'huge' (choose: tiny, default, large, icebreaker, ulx3s)"),
    (["--board", "ulx3s", "--mhz", "2000"], "no ECP5 PLL setting for 2000 MHz from 25 MHz (ecppll: "
                                           "Output frequency 2000MHz not in range (10MHz, 400MHz))"),
])
def test_bitstream_bad_input(capsys, monkeypatch, tmp_path, argv, message):
    """One line, exit 1, and no build directory made (each is refused before the build). The
    builds go to a folder of the test's own: the shared ``build/fpga`` is written by
    ``tests/test_fpga.py`` at the same time."""
    import lpu.tools.fpga as fpga
    monkeypatch.setattr(fpga, "BUILD", tmp_path)
    code, out, err = run(["bitstream"] + argv, capsys)
    assert code == 1
    assert err.strip() == f"error: {message}"
    assert list(tmp_path.iterdir()) == []


def _reports(build):
    """Two bitstream reports as ``lpu.tools.fpga`` writes them: a routed build and a
    synthesis that did not fit."""
    full = {"board": "ulx3s", "stage": "place and route", "preset": "lanes=8", "fits": True,
            "seconds": 1188.0, "clock": {"source": "EHXPLLL", "mhz": 50.0},
            "logic": [21421, 83640], "ff": [18945, 83640], "dsp": [96, 156], "bram": [27, 208],
            "fmax_mhz": 60.66, "target_mhz": 50.0, "timing_met": True, "peak_gops": 6.4}
    synth = {"board": "icebreaker", "stage": "synthesis", "preset": "lanes=4", "fits": False,
             "seconds": 40.0, "clock": {"source": "oscillator", "mhz": 12.0},
             "logic": [5331, 5280], "ff": [5561, 5280], "dsp": [20, 8], "bram": [30, 30]}
    for name, r in (("ulx3s", full), ("icebreaker-synth", synth)):
        (build / "fpga" / name).mkdir(parents=True)
        (build / "fpga" / name / "report.json").write_text(json.dumps(r))


def test_fpga_table_into_readme(tmp_path, capsys, monkeypatch):
    """``lpu fpga-table --readme F`` writes the reports' table between F's markers and leaves
    the rest of F as it was; a file without the markers is refused in one line, unchanged;
    without reports, one line and nothing written."""
    import lpu.tools.bench as bench
    from lpu.host.cli import README_TABLE
    monkeypatch.setattr(bench, "BUILD", tmp_path / "build")
    readme = tmp_path / "README.md"
    text = f"# title\n\nbefore\n{README_TABLE[0]}\nold table\n{README_TABLE[1]}\nafter\n"
    readme.write_text(text)
    code, _, err = run(["fpga-table", "--readme", readme], capsys)
    assert code == 2 and err.strip() == ("error: no bitstream reports in build/fpga: run make "
                                         "bitstream BOARD=... first")
    assert readme.read_text() == text
    _reports(tmp_path / "build")
    code, out, _ = run(["fpga-table", "--readme", readme], capsys)
    assert code == 0, out
    new = readme.read_text()
    head, table, tail = new.split("\n" + README_TABLE[0] + "\n")[0], *new.split(
        README_TABLE[0] + "\n")[1].split("\n" + README_TABLE[1])
    assert head + "\n" == text.split(README_TABLE[0])[0] and tail == "\nafter\n"
    rows = table.splitlines()
    assert len(rows) == 4 and "old table" not in table
    assert rows[2].startswith("| icebreaker-synth | lanes=4 | synthesis | oscillator 12 MHz |")
    assert "does not fit: logic 5,331 / 5,280, ff 5,561 / 5,280, dsp 20 / 8" in rows[2]
    assert rows[3] == ("| ulx3s | lanes=8 | place and route | EHXPLLL 50 MHz | 21,421 / 83,640 "
                       "| 18,945 / 83,640 | 96 / 156 | 27 / 208 | 60.66 | 50.0 | yes | 6.4 | "
                       "19.8 min |")
    code, out, _ = run(["fpga-table"], capsys)     # printed: the same table
    assert code == 0 and out.strip() == table.strip()
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    code, _, err = run(["fpga-table", "--readme", bare], capsys)
    assert code == 2 and "has no" in err and len(err.strip().splitlines()) == 1
    assert bare.read_text() == "no markers\n"
    # a second seed of the ulx3s build: a row of its own, and the sweep's table under the table
    seeded = json.loads((tmp_path / "build/fpga/ulx3s/report.json").read_text())
    (tmp_path / "build/fpga/ulx3s-seed3").mkdir()
    (tmp_path / "build/fpga/ulx3s-seed3/report.json").write_text(
        json.dumps({**seeded, "seed": 3, "fmax_mhz": 48.5, "timing_met": False}))
    code, out, _ = run(["fpga-table"], capsys)
    assert code == 0 and "\n| ulx3s-seed3 | lanes=8 | place and route |" in out
    assert out.rstrip().endswith("| ulx3s | 50.0 | 2 (default, 3) | 1 | 48.5 / 54.58 / 60.66 | 0 |")


def test_seed_sweeps_summarise_one_netlist_and_target_over_its_seeds():
    """A sweep's row: the default seed's build (no ``-seed<N>``) and each seed's, of the same
    target; a stopped build counts as stopped and has no Fmax; a build at another target, a
    synthesis and a build without seeds make no row."""
    from lpu.tools.bench import seed_sweeps

    def pnr(fmax, seed=None, target=100.0, **kw):
        r = {"stage": "place and route", "fits": True, "target_mhz": target, "seed": seed, **kw}
        return r if fmax is None else {**r, "fmax_mhz": fmax, "timing_met": fmax >= target}
    reports = {"ulx3s": pnr(101.15), "ulx3s-seed3": pnr(99.01, 3), "ulx3s-seed10": pnr(92.17, 10),
               "ulx3s-seed2": pnr(None, 2, fits=None, stopped_after_min=30, timing_met=False),
               "ulx3s-seed4": pnr(66.0, 4, target=65.0),          # another target: alone
               "ulx3s-tiny": pnr(100.45), "ulx3s-synth": {"stage": "synthesis", "fits": True}}
    rows = seed_sweeps(reports)
    assert rows[2:] == ["| ulx3s | 100.0 | 4 (default, 2, 3, 10) | 1 | 92.17 / 99.01 / 101.15 | 1 |"]
    assert rows[0].count("|") == rows[2].count("|")
    assert seed_sweeps({"ulx3s": pnr(101.15), "ulx3s-tiny": pnr(100.45)}) == []


@pytest.mark.parametrize("tiles,backend", [(1, "model"), (2, "model"), (3, "model"), (2, "sim")])
def test_gemm_chain_on_a_chip(tmp_path, capsys, tiles, backend):
    """``lpu gemm A B1 B2 B3 --quant ... --tiles N``: the chain of quantised GEMMs streaming
    through a chip (layers placed on its tiles, the batch pipelined) gives the reference's
    bytes, layer after layer; on the model and through the RTL."""
    rng = np.random.default_rng(tiles)
    dims = [13, 9, 6, 11]
    A = rng.integers(-128, 128, (10, dims[0]), dtype=np.int8)
    np.save(tmp_path / "A.npy", A)
    want, names, quants, biases = A, [], [], []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        B = rng.integers(-128, 128, (k, n), dtype=np.int8)
        bias = rng.integers(-500, 500, n).astype(np.int32)
        q = {"multiplier": [int(m) for m in rng.integers(1 << 29, 1 << 31, n)], "shift": -8,
             "input_zero_point": int(rng.integers(-5, 5)), "output_zero_point": 3,
             "rounding": ["single", "double"][i % 2]}
        np.save(tmp_path / f"B{i}.npy", B)
        np.save(tmp_path / f"bias{i}.npy", bias)
        (tmp_path / f"q{i}.json").write_text(json.dumps(q))
        names.append(tmp_path / f"B{i}.npy")
        quants.append(str(tmp_path / f"q{i}.json"))
        biases.append(str(tmp_path / f"bias{i}.npy"))
        want = reference_gemm(want, B, bias, Quant(
            np.array(q["multiplier"]), np.full(n, -8), input_zero_point=q["input_zero_point"],
            output_zero_point=3, rounding=q["rounding"]))
    code, out, err = run(["gemm", tmp_path / "A.npy", *names, "-o", tmp_path / "o.npy",
                          "--bias", ",".join(biases), "--quant", ",".join(quants),
                          "--config", "tiny", "--tiles", tiles, "--backend", backend], capsys)
    assert code == 0, err
    got = np.load(tmp_path / "o.npy")
    assert got.dtype == np.int8 and np.array_equal(got, want)
    assert f"chain of 3 GEMMs on tiny x {tiles} tiles" in out


@pytest.mark.parametrize("backend", ["model", "sim"])
def test_gemm_split_between_two_tiles(tmp_path, capsys, backend):
    """``lpu gemm A B --quant q --tiles 2``: one GEMM on a chip of two tiles, its output
    columns split between them (the host loads A into both; each computes whole N tiles and
    keeps its columns): the reference's bytes, on the model and through the RTL."""
    rng = np.random.default_rng(5)
    A = rng.integers(-128, 128, (9, 7), dtype=np.int8)
    B = rng.integers(-128, 128, (7, 11), dtype=np.int8)
    q = {"multiplier": 1 << 30, "shift": -6, "output_zero_point": -2}
    for name, x in (("A", A), ("B", B)):
        np.save(tmp_path / f"{name}.npy", x)
    (tmp_path / "q.json").write_text(json.dumps(q))
    code, out, err = run(["gemm", tmp_path / "A.npy", tmp_path / "B.npy", "-o",
                          tmp_path / "o.npy", "--quant", tmp_path / "q.json", "--config", "tiny",
                          "--tiles", "2", "--backend", backend], capsys)
    assert code == 0, err
    want = reference_gemm(A, B, None, Quant(np.full(11, 1 << 30), np.full(11, -6),
                                            output_zero_point=-2))
    assert np.array_equal(np.load(tmp_path / "o.npy"), want)
    assert re.search(r"layers per tile 0\[0:\d\] \| 0\[\d:3\]", out), out
