"""Real networks (``lpu run``) against the oracle users deploy with: LiteRT's interpreter.

Every fixture in ``tests/models`` (made by ``tests/models/make_models.py``), every layer's
output tensor (not only the last) compared byte for byte with ``ai-edge-litert``'s reference
kernels (``OpResolverType.BUILTIN_REF``, every intermediate tensor preserved): on the model
back end on every preset, on the sim back end (MLP and CNN), on the fpga back end through the
virtual board (MLP). ``--rounding double`` is checked against the gemmlowp GEMM oracle
(``model.gemm``) layer by layer. Bad models and inputs exit 2 with one line and write nothing.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lpu.contract.config import BOARD_CLOCK_MHZ, PRESETS, preset
from lpu.host.cli import main
from lpu.host.network import SHAPE_OPS, load_model, run_network, tile_gemm
from lpu.host.runtime import network_gemm
from lpu.tools.litert import litert_invoke
from model.gemm import reference_gemm

MODELS = Path(__file__).resolve().parent / "models"
FIXTURES = ["digits_mlp", "digits_mlp_per_tensor", "digits_cnn", "digits_residual",
            "digits_cnn_variety", "anomaly_ae"]
RECORDED = json.loads((MODELS / "models.json").read_text())
SMALL = {"tiny", "icebreaker"}            # 4 lanes: fewer inputs keep the suite fast


def inputs(name, n=None):
    x = np.load(MODELS / f"{name}.inputs.npy")
    return x if n is None else x[:n]


def litert_tensors(name, x):
    """Every int8 tensor LiteRT's reference kernels compute for ``x``: {index: array}."""
    return litert_invoke(MODELS / f"{name}.tflite", x, all_tensors=True)[0]


def assert_every_layer_equal(net, got, want, what):
    compared = 0
    for layer in net.layers:
        if layer.op in SHAPE_OPS:
            continue
        for t in layer.outputs:
            np.testing.assert_array_equal(
                got[t], want[t], err_msg=f"{what}: layer {layer.index} ({layer.op}) differs "
                                         f"from LiteRT")
            compared += 1
    assert compared == len([la for la in net.layers if la.op not in SHAPE_OPS])


@pytest.mark.parametrize("preset_name", list(PRESETS))
@pytest.mark.parametrize("name", FIXTURES)
def test_model_backend_every_layer_equals_litert(name, preset_name):
    x = inputs(name, 12 if preset_name in SMALL else None)
    net = load_model(MODELS / f"{name}.tflite")
    got, records = run_network(net, x, network_gemm(preset(preset_name), "model"), "single")
    assert_every_layer_equal(net, got, litert_tensors(name, x), f"{name} on {preset_name}")
    assert any(r["where"] == "tile" for r in records)


@pytest.mark.parametrize("name", FIXTURES)
def test_double_rounding_is_gemmlowp_layer_by_layer(name):
    """``--rounding double``: each tile layer equals the gemmlowp GEMM oracle on the layer's
    own input; and the two roundings differ on some layer of the fixtures."""
    cfg = preset("default")
    x = inputs(name, 64)
    net = load_model(MODELS / f"{name}.tflite")
    got, _ = run_network(net, x, network_gemm(cfg, "model"), "double")
    single, _ = run_network(net, x, network_gemm(cfg, "model"), "single")
    for layer in net.layers:
        if layer.on_tile:
            A, B, bias, q, shape = tile_gemm(net, layer, got[layer.inputs[0]], "double")
            np.testing.assert_array_equal(got[layer.outputs[0]],
                                          reference_gemm(A, B, bias, q).reshape(shape))
    if name == "digits_mlp":
        assert any(not np.array_equal(got[t], single[t]) for t in got), \
            "single and double rounding agree on every byte of the MLP"


def test_accuracy_and_report_as_recorded(tmp_path, capsys):
    """The CLI end to end on every fixture: the recorded accuracy (digits) or reconstruction
    error (autoencoder) comes out of lpu run's output, and the report is complete."""
    labels = np.load(MODELS / "digits_labels.npy")
    for name in FIXTURES:
        out, rep = tmp_path / f"{name}.npy", tmp_path / f"{name}.json"
        code = main(["run", str(MODELS / f"{name}.tflite"), str(MODELS / f"{name}.inputs.npy"),
                     "-o", str(out), "--report", str(rep), "--clock-mhz", "50"])
        printed = capsys.readouterr().out
        assert code == 0
        y = np.load(out)
        report = json.loads(rep.read_text())
        rec = RECORDED[name]
        if rec["task"] == "digits":
            assert np.mean(np.argmax(y, axis=1) == labels) == rec["accuracy"], name
        else:
            _, _, (scale, zp) = litert_invoke(MODELS / f"{name}.tflite", inputs(name, 1))
            xf = _ae_reference_inputs(name)
            mse = float(np.mean(((y.astype(np.float32) - zp) * scale - xf) ** 2))
            assert abs(mse - rec["mse"]) <= 1e-9 * rec["mse"], (mse, rec["mse"])
        t = report["total"]
        assert t["batch"] == len(y) and t["clock_mhz"] == 50
        assert t["cycles"] == t["tile_cycles"] + t["host_port_cycles"]
        assert t["macs"] == sum(la.get("macs", 0) for la in report["layers"])
        assert abs(t["latency_ms"] - t["cycles"] / 50e3) < 1e-9
        tile_layers = [la for la in report["layers"] if la["where"] == "tile"]
        assert tile_layers and all(la["cycles"] > 0 and 0 < la["mxm_utilisation"] <= 1
                                   for la in tile_layers)
        assert f"{t['cycles']:,} cycles" in printed and "inferences/s" in printed


def _ae_reference_inputs(name):
    """The float inputs the autoencoder fixture's int8 inputs were quantised from: the
    recorded MSE is against them (``make_models.py``). Rebuilt from the int8 inputs'
    dequantisation is not the same, so the script's float data is regenerated here."""
    sys.path.insert(0, str(MODELS))
    try:
        import make_models
        return make_models.ae_data(2048 + make_models.N_AE)[-make_models.N_AE:]
    finally:
        sys.path.remove(str(MODELS))


BAD = [
    ("bad_float.tflite", "digits_mlp.inputs.npy", r"^error: the model's input is float32: a float model"),
    ("bad_int16.tflite", "digits_mlp.inputs.npy", r"^error: the model's input is int16"),
    ("bad_softmax.tflite", "digits_mlp.inputs.npy", r"^error: operator SOFTMAX \(layer 2\) is not supported"),
    ("missing.tflite", "digits_mlp.inputs.npy", r"^error: model file '.*missing.tflite' not found"),
    ("digits_labels.npy", "digits_mlp.inputs.npy", r"^error: model file '.*' is not a TFLite flatbuffer"),
    ("digits_mlp.tflite", "digits_cnn.inputs.npy", r"^error: INPUT must have shape \(N, 64\) with N >= 1, got \(200, 8, 8, 1\)"),
    ("digits_mlp.tflite", "float.npy", r"^error: INPUT must have dtype int8 \(the model's input\), got float32"),
    ("digits_mlp.tflite", "empty.npy", r"^error: INPUT must have shape \(N, 64\) with N >= 1, got \(0, 64\)"),
    ("digits_mlp.tflite", "missing.npy", r"^error: INPUT file '.*missing.npy' not found"),
]


@pytest.mark.parametrize("model,inp,message", BAD, ids=[m + "+" + i for m, i, _ in BAD])
def test_bad_input_exits_2_with_one_line(model, inp, message, tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((2, 64), np.float32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 64), np.int8))
    mpath = MODELS / model
    ipath = MODELS / inp if (MODELS / inp).exists() else tmp_path / inp
    out = tmp_path / "out.npy"
    r = subprocess.run([sys.executable, "-m", "lpu", "run", str(mpath), str(ipath), "-o", str(out),
                        "--report", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists() and not (tmp_path / "r.json").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"float.npy", "empty.npy"}


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_sim_backend_every_layer_equals_litert(name):
    """The same network through the RTL (Verilator, cocotb), every layer byte for byte."""
    x = inputs(name, 6)
    net = load_model(MODELS / f"{name}.tflite")
    got, records = run_network(net, x, network_gemm(preset("tiny"), "sim"), "single")
    assert_every_layer_equal(net, got, litert_tensors(name, x), f"{name} on sim")
    model, model_records = run_network(net, x, network_gemm(preset("tiny"), "model"), "single")
    for r, m in zip(records, model_records):     # and cycle for cycle with the model
        assert r.get("counters") == m.get("counters"), r["layer"]


def test_the_icebreaker_preset_runs_a_network(tmp_path, capsys):
    """The digits CNN on the iCEBreaker's tile (bit-serial VXM, 4 lanes, 64-word banks, its
    parameters written in 32-bit parts) gives LiteRT's bytes, and its report is at the
    board's own 12 MHz clock unless told otherwise (another preset's: the ULX3S's)."""
    model, x = MODELS / "digits_cnn.tflite", MODELS / "digits_cnn.inputs.npy"
    for name in ("icebreaker", "tiny"):
        out, rep = tmp_path / f"{name}.npy", tmp_path / f"{name}.json"
        assert main(["run", str(model), str(x), "-o", str(out), "--report", str(rep),
                     "--config", name]) == 0
        clock = json.loads(rep.read_text())["total"]["clock_mhz"]
        assert clock == BOARD_CLOCK_MHZ.get(name, BOARD_CLOCK_MHZ["ulx3s"]), (name, clock)
    capsys.readouterr()
    np.testing.assert_array_equal(np.load(tmp_path / "icebreaker.npy"),
                                  litert_invoke(model, np.load(x))[0])
