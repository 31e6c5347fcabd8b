"""Hardware in the loop without a board: `lpu serve-sim` exposes the simulated tile + bridge
as a pseudo-terminal, and `lpu gemm --backend fpga --port <pty>` (the real board path:
pyserial, frames, the bridge gateware) equals `--backend model` byte for byte and cycle for
cycle. Stopping the server leaves no simulator behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lpu.contract.config import preset
from lpu.tools.litert import litert_invoke


def _virtual_boards_running():
    """PIDs of simulator processes running the virtual board's testbench."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        if b"COCOTB_TEST_MODULES=tb.serve_bridge\0" in env:
            pids.append(pid)
    return pids


@pytest.mark.parametrize("name", ["tiny"])
def test_fpga_backend_through_virtual_board(name, tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "lpu", "serve-sim", "--config", name,
                               "--seconds", "600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        port = server.stdout.readline().strip()
        assert port.startswith("/dev/"), f"serve-sim printed {port!r}: {server.stderr.read()}"
        rng = np.random.default_rng(99)
        L = preset(name).lanes
        for i, (M, K, N) in enumerate([(1, 1, 1), (5, 2 * L + 1, 3), (2 * L + 1, 7, L + 1)]):
            np.save(tmp_path / "A.npy", rng.integers(-128, 128, (M, K), dtype=np.int8))
            np.save(tmp_path / "B.npy", rng.integers(-128, 128, (K, N), dtype=np.int8))
            np.save(tmp_path / "bias.npy", rng.integers(-999, 999, N).astype(np.int32))
            (tmp_path / "q.json").write_text(json.dumps({"multiplier": 1 << 30, "shift": -4,
                                                         "output_zero_point": 2}))
            for extra in ([], ["--quant", "q.json"]):
                lines = {}
                for backend in ("model", "fpga"):
                    r = subprocess.run([sys.executable, "-m", "lpu", "gemm", "A.npy", "B.npy",
                                        "-o", f"{backend}.npy", "--bias", "bias.npy", "--config",
                                        name, "--backend", backend, "--port", port] + extra,
                                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
                    assert r.returncode == 0, r.stderr
                    lines[backend] = r.stdout.strip().split(": ", 1)[1]
                assert (tmp_path / "model.npy").read_bytes() == (tmp_path / "fpga.npy").read_bytes(), \
                    f"case {i} {extra}: board and model outputs differ"
                assert lines["model"] == lines["fpga"], lines
        # a real network through the board path: lpu run --backend fpga equals the model
        # back end (output and report) and LiteRT's interpreter
        models = Path(__file__).resolve().parent / "models"
        x = np.load(models / "digits_mlp.inputs.npy")[:3]
        np.save(tmp_path / "x.npy", x)
        reports = {}
        for backend in ("model", "fpga"):
            r = subprocess.run([sys.executable, "-m", "lpu", "run", str(models / "digits_mlp.tflite"),
                                "x.npy", "-o", f"net-{backend}.npy", "--config", name,
                                "--backend", backend, "--port", port, "--report", f"{backend}.json"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, r.stderr
            reports[backend] = json.loads((tmp_path / f"{backend}.json").read_text())
        assert (tmp_path / "net-model.npy").read_bytes() == (tmp_path / "net-fpga.npy").read_bytes()
        assert reports["model"]["layers"] == reports["fpga"]["layers"]
        want, _, _ = litert_invoke(models / "digits_mlp.tflite", x)
        np.testing.assert_array_equal(np.load(tmp_path / "net-fpga.npy"), want)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    time.sleep(0.5)
    assert _virtual_boards_running() == [], "serve-sim left a simulator running"


def test_fpga_backend_needs_a_port(tmp_path):
    np.save(tmp_path / "A.npy", np.zeros((2, 2), np.int8))
    np.save(tmp_path / "B.npy", np.zeros((2, 2), np.int8))
    r = subprocess.run([sys.executable, "-m", "lpu", "gemm", "A.npy", "B.npy", "-o", "o.npy",
                        "--backend", "fpga"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: --backend fpga needs --port PORT")
    r = subprocess.run([sys.executable, "-m", "lpu", "gemm", "A.npy", "B.npy", "-o", "o.npy",
                        "--backend", "fpga", "--port", "/dev/nonexistent-tty"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: cannot open serial port '/dev/nonexistent-tty'")
    assert not (tmp_path / "o.npy").exists()
