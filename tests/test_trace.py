"""Timelines (``--trace``, ``lpu.host.trace``): valid Chrome trace-event JSON, every stream on
its unit's track, the RTL's observed timeline equal to the model's, and ``lpu trace-diff``
finding a shifted event on the cycle it moved to."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lpu.contract.config import preset
from lpu.contract.timing import EVENTS
from lpu.host.compiler import compile_gemm
from lpu.host.network import load_model, run_network
from lpu.host.runtime import network_gemm, run_gemm
from lpu.host.trace import build_trace, diff_traces, run_timeline, timing_events
from model.tile import schedule

MODELS = Path(__file__).resolve().parent / "models"
UNITS = {"LW": "LW (weight port)", "MM": "MXM", "VX": "VXM"}


def _lpu(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lpu", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def _gemm_timeline(cfg, rng, M=20, K=40, N=12):
    timeline = []
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    run_gemm(cfg, A, B, timeline=timeline)
    return timeline


def _slices(trace):
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    return [(names[e["tid"]], e) for e in trace["traceEvents"] if e["ph"] == "X"]


def test_trace_is_chrome_json_with_every_stream_on_its_track():
    cfg = preset("tiny")
    timeline = _gemm_timeline(cfg, np.random.default_rng(1))
    trace = json.loads(json.dumps(build_trace(cfg, timeline, backend="model",
                                              config_name="tiny")))
    assert isinstance(trace["traceEvents"], list)
    for e in trace["traceEvents"]:
        assert e["ph"] in ("M", "X", "C") and isinstance(e["pid"], int)
        if e["ph"] == "X":
            assert isinstance(e["ts"], int) and e["dur"] >= 1 and isinstance(e["tid"], int)
    slices = _slices(trace)
    for run, r in enumerate(timeline):
        for pc, insn in enumerate(r["program"]):
            mine = {track for track, e in slices
                    if e["args"].get("run") == run and e["args"].get("pc") == pc}
            assert "sequencer" in mine
            op = str(insn).split()[0]
            if op in UNITS:
                assert UNITS[op] in mine, (run, pc, mine)
            if op in ("LW", "MM"):
                assert f"bank {insn.bank} read" in mine
    # each unit's vectors: one slice per instruction when every vector is on time
    for name, track in (("activations", "MXM"), ("weight_rows", "LW (weight port)")):
        n = sum(e["args"]["vectors"] for t, e in slices if t == track)
        assert n == sum(len(r["events"][name]) for r in timeline)


@pytest.mark.parametrize("event", ["activations", "weight_rows", "vx_reads", "results"])
def test_shifted_event_is_reported_on_its_cycle(event):
    """One vector in the middle of a stream one cycle late: the diff names the cycle the
    vector was due on, on the first track it shows on: for LW's rows and MM's activations
    that is their bank's read stream (placed ``sram_read_latency`` before them), else the
    unit's own."""
    cfg = preset("tiny")
    timeline = _gemm_timeline(cfg, np.random.default_rng(2))
    late = copy.deepcopy(timeline)
    run = len(late) - 1
    cycles = late[run]["events"][event]
    k = len(cycles) // 2
    due = cycles[k]
    cycles[k] += 1
    a = build_trace(cfg, timeline, backend="model", config_name="tiny")
    b = build_trace(cfg, late, backend="sim", config_name="tiny")
    d = diff_traces(a, b)
    start = sum(sum(r["host"]) + r["counters"]["cycles"] for r in timeline[:run]) + \
        timeline[run]["host"][0]
    read = event in ("activations", "weight_rows")
    assert d is not None and d["cycle"] == start + due - (cfg.sram_read_latency if read else 0)
    track = {"activations": "read", "weight_rows": "read", "vx_reads": "VXM",
             "results": "accumulators"}[event]
    assert d["track"].endswith(track), d
    assert diff_traces(a, a) is None


def test_every_model_event_lands_in_one_slice():
    """run_timeline accounts for every event of random GEMM programs, and refuses events the
    program cannot account for."""
    cfg = preset("tiny")
    rng = np.random.default_rng(3)
    for _ in range(5):
        M, K, N = (int(x) for x in rng.integers(1, 40, 3))
        plan = compile_gemm(cfg, rng.integers(-128, 128, (M, K), dtype=np.int8),
                            rng.integers(-128, 128, (K, N), dtype=np.int8))
        for run in plan.runs:
            ev = timing_events(schedule(run.program, cfg))
            assert set(ev) == set(EVENTS)
            slices = run_timeline(cfg, run.program, ev)
            assert sum(a.get("vectors", 0) for t, *_r, a in slices if t == "MXM") == \
                len(ev["activations"])
            ev["results"].append(ev["results"][-1] + 1)
            with pytest.raises(ValueError, match="'results' events more"):
                run_timeline(cfg, run.program, ev)


def test_trace_diff_command(tmp_path):
    cfg = preset("tiny")
    timeline = _gemm_timeline(cfg, np.random.default_rng(4))
    a = build_trace(cfg, timeline, backend="model", config_name="tiny")
    (tmp_path / "a.json").write_text(json.dumps(a))
    r = _lpu("trace-diff", "a.json", "a.json", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("traces agree"), r.stdout + r.stderr
    timeline[0]["events"]["sram_writes"][0] += 1
    b = build_trace(cfg, timeline, backend="model", config_name="tiny")
    (tmp_path / "b.json").write_text(json.dumps(b))
    r = _lpu("trace-diff", "a.json", "b.json", cwd=tmp_path)
    assert r.returncode == 1 and re.search(r"at cycle \d+ on track .tile 0/bank \d write", r.stdout), \
        r.stdout + r.stderr
    (tmp_path / "bad.json").write_text("{}")
    for args, msg in ((["a.json", "missing.json"], "no trace at"),
                      (["a.json", "bad.json"], "not a Chrome trace")):
        r = _lpu("trace-diff", *args, cwd=tmp_path)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.splitlines()) == 1


def test_gemm_trace_sim_equals_model(tmp_path):
    """`lpu gemm --trace` on both back ends: the RTL's observed timeline equals the model's."""
    rng = np.random.default_rng(5)
    np.save(tmp_path / "A.npy", rng.integers(-128, 128, (21, 37), dtype=np.int8))
    np.save(tmp_path / "B.npy", rng.integers(-128, 128, (37, 9), dtype=np.int8))
    for backend in ("model", "sim"):
        r = _lpu("gemm", "A.npy", "B.npy", "-o", f"{backend}.npy", "--config", "tiny",
                 "--backend", backend, "--trace", f"{backend}.json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    r = _lpu("trace-diff", "model.json", "sim.json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert sim["otherData"]["events"].startswith("observed")
    r = _lpu("gemm", "A.npy", "B.npy", "-o", "x.npy", "--trace", "nowhere/t.json",
             cwd=tmp_path)
    assert r.returncode == 2 and "trace folder" in r.stderr and not (tmp_path / "x.npy").exists()


def test_network_trace_every_layer_on_the_units(tmp_path):
    """`lpu run --trace` on the digits CNN: each tile layer's slice on the network track holds
    its LW, MM and VX streams on their units' tracks."""
    r = _lpu("run", str(MODELS / "digits_cnn.tflite"), str(MODELS / "digits_cnn.inputs.npy"),
             "-o", "out.npy", "--config", "tiny", "--trace", "cnn.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    trace = json.loads((tmp_path / "cnn.json").read_text())
    slices = _slices(trace)
    layers = [e for t, e in slices if t == "network"]
    net = load_model(MODELS / "digits_cnn.tflite")
    assert len(layers) == sum(layer.on_tile for layer in net.layers) > 1
    for layer in layers:
        a, b = layer["ts"], layer["ts"] + layer["dur"]
        inside = {t for t, e in slices if a <= e["ts"] and e["ts"] + e["dur"] <= b}
        assert {"LW (weight port)", "MXM", "accumulators", "VXM", "host"} <= inside, layer


def test_network_trace_sim_equals_model():
    """The digits CNN through the RTL: its observed timeline equals the model's prediction."""
    x = np.load(MODELS / "digits_cnn.inputs.npy")[:2]
    net = load_model(MODELS / "digits_cnn.tflite")
    cfg = preset("tiny")
    traces = []
    for backend in ("model", "sim"):
        timeline = []
        run_network(net, x, network_gemm(cfg, backend, timeline=timeline), "single")
        traces.append(build_trace(cfg, timeline, backend=backend, config_name="tiny"))
    assert diff_traces(*traces) is None


# both in `make test-heavy` (a build of each chip: 2.5 min of make test's budget); make test's
# chip testbench checks every tile's every event on its cycle (tests/test_sim.py::test_chip)
@pytest.mark.heavy
@pytest.mark.parametrize("name", ["default*3", "default*2"])
def test_chip_network_trace_sim_equals_model(name):
    """The digits MLP on a 3-tile chip (a layer per tile) and a 2-tile chip (layers 1 and 2
    on tile 1) through the RTL: the same output as the model and the same timeline, tile by
    tile and link by link."""
    from lpu.host.chain import run_network_on_chip
    from lpu.host.trace import build_chip_trace
    net = load_model(MODELS / "digits_mlp.tflite")
    x = np.load(MODELS / "digits_mlp.inputs.npy")[:24]
    cfg = preset(name)
    outs, traces = [], []
    for backend in ("model", "sim"):
        timeline = []
        outs.append(run_network_on_chip(net, x, cfg, backend, timeline=timeline)[0])
        traces.append(build_chip_trace(cfg, timeline, backend=backend, config_name=name))
    assert np.array_equal(*outs)
    assert diff_traces(*traces) is None
    assert any(e.get("name") == "thread_name" and e["args"]["name"] == "link east"
               for e in traces[1]["traceEvents"])
