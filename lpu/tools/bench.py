"""`make bench`: measured side by side in one run, written to build/bench/results.{json,md}.

* Simulation throughput of one compiled GEMM program (M = 16 L, K = N = 4 L, quantised), run
  repeatedly: the framework's path (cocotb + Verilator, whole-program runs, as ``make sim``),
  a native C++ Verilator harness of the same RTL and program (the ceiling), and a naive
  cocotb driver that wakes Python on every clock edge. Every path's results are read back and
  checked against the golden model, so the MACs counted are verified MACs.
* The levers, one at a time on ``default``: cocotb's default build (--public-flat-rw, -Os),
  ports-only public signals, -O2, and the clock in Python instead of C++.
* Utilisation and cycles for a table of GEMM shapes, model and RTL side by side.
* Golden-model speed against ``np.matmul``.
* ``make sim`` wall time with a cold and a warm build cache.
* FPGA figures from the bitstream reports, where they exist.
"""

import hashlib
import json
import os
import pickle
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..host.compiler import Quant, compile_gemm
from model.gemm import reference_gemm
from ..contract.config import preset
from .fpga import overfull
from ..contract.hostport import HostPort, load_run
from ..host.runtime import run_gemm, sim_job, sim_plans
from .simulation import BUILD, ROOT, generate_verilog, run_testbench
from .toolchain import verilator_env

__all__ = ["run_bench"]

OUT = BUILD / "bench"


def _log(msg):
    print(msg, flush=True)


def _bench_program(cfg):
    L = cfg.lanes
    rng = np.random.default_rng(2026)
    M, K, N = 16 * L, 4 * L, 4 * L
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    q = Quant(multiplier=rng.integers(1 << 29, 1 << 31, N), shift=np.full(N, -9),
              output_zero_point=-3, input_zero_point=5)
    plan = compile_gemm(cfg, A, B, rng.integers(-5000, 5000, N).astype(np.int32), q)
    assert len(plan.runs) == 1, "benchmark GEMM must fit one run"
    return plan


def _expected(cfg, plan):
    """Result regions and counters of one run of the plan, from the golden model."""
    from model.tile import TileModel
    from ..host.runtime import result_regions
    run = plan.runs[0]
    dev = TileModel(cfg)
    load_run(dev, run)
    counters = dev.run(run.program)
    regions = {r: dev.read_sram(*r) for r in result_regions(cfg, run)}
    return regions, counters


# ---- native harness --------------------------------------------------------------------
def _native_build(name, cfg):
    text = generate_verilog("tile", cfg)
    src = ROOT / "lpu" / "tools" / "native" / "harness.cpp"
    key = hashlib.sha256(text.encode() + src.read_bytes() +
                         verilator_env({}).get("MAKEFLAGS", "").encode()).hexdigest()[:16]
    d = OUT / "native" / f"tile-{name}-{key}"
    exe = d / "Vtop"
    if exe.exists():
        return exe
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "top.v").write_text(text)
    t0 = time.monotonic()
    log = d / "build.log"
    with log.open("w") as f:
        r = subprocess.run(["verilator", "--cc", "--exe", "--build", "-O3", "--x-assign", "fast",
                            "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                            "--top-module", "top", "--prefix", "Vtop", "-Mdir", str(d),
                            "-j", str(os.cpu_count() or 1), str(src), str(d / "top.v")],
                           env=verilator_env(), stdout=f, stderr=subprocess.STDOUT, cwd=d)
    if r.returncode != 0:
        raise RuntimeError(f"the native harness for {name} did not build (log: {log})")
    _log(f"  built native harness for {name} in {time.monotonic() - t0:.1f} s")
    return exe


def _native_run(exe, cfg, job, repeats):
    item = job["runs"][0]
    run = item["run"]
    hb = cfg.host_data_bits
    port = HostPort(cfg)
    lines = []
    accesses = [a for bank, (addr, words) in run.sram.items()
                for a in port.sram_writes(bank, addr, words)]
    accesses += [a for row, params in run.params.items() for a in port.param_writes(row, params)]
    accesses += port.program_writes(run.program)
    for a in accesses:
        words = [(a.value >> (32 * i)) & 0xFFFFFFFF for i in range(hb // 32)]
        lines.append(f"w {a.region} {a.bank} {a.addr} {a.part} {len(words)} " +
                     " ".join(f"{x:x}" for x in words))
    lines.append(f"run {repeats}")
    for bank, addr, n in item["read"]:
        lines.append(f"read {bank} {addr} {n}")
    with tempfile.NamedTemporaryFile("w", suffix=".job") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        r = subprocess.run([str(exe), f.name], capture_output=True, text=True, check=True)
    out = r.stdout.split("\n")
    words = []
    for line in out:
        if line and not line.startswith("cycles"):
            v = int(line, 16)
            words.append([((v >> (8 * i)) & 0xFF) for i in range(cfg.lanes)])
    tail = [l for l in out if l.startswith("cycles")][0].split()
    read, i = {}, 0
    for bank, addr, n in item["read"]:
        read[(bank, addr, n)] = np.array(words[i:i + n], dtype=np.uint8).view(np.int8)
        i += n
    return int(tail[1]), float(tail[3]), read


# ---- cocotb paths ---------------------------------------------------------------------------
def _cocotb_run(name, cfg, job, repeats, mode, tb_clock=None, cycles=None, **build_options):
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-", dir=OUT) as tmp:
        work = Path(tmp)
        (work / "job.pkl").write_bytes(pickle.dumps({**job["runs"][0], "repeats": repeats,
                                                     "cycles": cycles}))
        res = run_testbench("tile", cfg, seed=0, run_dir=work / "run", timeout=3600,
                            test_module="tb.bench_tile", log=lambda s: _log("  " + s),
                            extra_env={"LPU_BENCH_JOB": work / "job.pkl", "LPU_BENCH_MODE": mode,
                                       "LPU_BENCH_OUT": work / "out.pkl",
                                       **({"LPU_CLOCK_IMPL": tb_clock} if tb_clock else {})},
                            **build_options)
        if not res.passed:
            raise RuntimeError(f"bench {mode} on {name} failed: {res.message}")
        return pickle.loads((work / "out.pkl").read_bytes())


def _verify(what, read, counters, expected, exp_counters):
    for key, want in expected.items():
        if not np.array_equal(read[key], want):
            raise RuntimeError(f"{what}: results differ from the golden model in region {key}")
    if counters is not None and counters != exp_counters:
        raise RuntimeError(f"{what}: counters {counters} != model {exp_counters}")


def sim_throughput(name, target_cycles=2_000_000, naive_cycles=200_000):
    cfg = preset(name)
    plan = _bench_program(cfg)
    job = sim_job(cfg, plan.runs)
    expected, exp_counters = _expected(cfg, plan)
    per_run = exp_counters["cycles"] + 1          # + the start cycle
    macs = plan.macs
    res = {"gemm": f"{plan.M}x{plan.K}x{plan.N} int8", "cycles_per_run": per_run}

    reps = max(1, target_cycles // per_run)
    exe = _native_build(name, cfg)
    cyc, sec, read = _native_run(exe, cfg, job, reps)
    _verify("native", read, None, expected, exp_counters)
    assert cyc == reps * per_run, f"native harness ran {cyc} cycles, model says {reps * per_run}"
    res["native_cycles_per_s"] = cyc / sec
    res["native_macs_per_s"] = reps * macs / sec

    out = _cocotb_run(name, cfg, job, reps, "edge", cycles=per_run)
    _verify("wait for done", {k: v for k, v in out["read"]}, out["counters"], expected, exp_counters)
    res["edge_cycles_per_s"] = reps * per_run / out["seconds"]
    out = _cocotb_run(name, cfg, job, reps, "framework", cycles=per_run)
    _verify("framework", {k: v for k, v in out["read"]}, out["counters"], expected, exp_counters)
    res["framework_cycles_per_s"] = reps * per_run / out["seconds"]
    res["framework_macs_per_s"] = reps * macs / out["seconds"]
    res["framework_load_s"] = out["load_seconds"]

    nreps = max(1, naive_cycles // per_run)
    out = _cocotb_run(name, cfg, job, nreps, "naive", cycles=per_run, tb_clock="gpi", clock="gpi")
    _verify("naive", {k: v for k, v in out["read"]}, out["counters"], expected, exp_counters)
    res["naive_cycles_per_s"] = nreps * per_run / out["seconds"]
    res["naive_macs_per_s"] = nreps * macs / out["seconds"]
    res["ratio_framework_native"] = res["framework_cycles_per_s"] / res["native_cycles_per_s"]
    res["ratio_naive_native"] = res["naive_cycles_per_s"] / res["native_cycles_per_s"]
    return res


def levers(name="default", target_cycles=1_000_000):
    """The framework path with one thing changed at a time."""
    cfg = preset(name)
    plan = _bench_program(cfg)
    job = sim_job(cfg, plan.runs)
    expected, exp_counters = _expected(cfg, plan)
    reps = max(1, target_cycles // (exp_counters["cycles"] + 1))
    variants = [
        ("cocotb's default flow: --public-flat-rw, -Os, cocotb clock in C++",
         dict(public_all=True, opt_fast="-Os", clock="gpi")),
        ("ports-only public signals, -Os, cocotb clock in C++", dict(opt_fast="-Os", clock="gpi")),
        ("ports-only public signals, -O2, cocotb clock in C++", dict(clock="gpi")),
        ("ports-only, -O2, cocotb clock in Python", dict(clock="py")),
        ("ports-only, -O2, clock generated in the model (--timing): the framework", dict()),
    ]
    rows = []
    for label, opts in variants:
        tb_clock = opts.get("clock", "verilog")
        if tb_clock == "py":                      # same build as "gpi", clock run by Python
            opts["clock"] = "gpi"
        t0 = time.monotonic()
        from .simulation import build
        build("tile", cfg, log=lambda s: None, **opts)
        build_s = time.monotonic() - t0
        out = _cocotb_run(name, cfg, job, reps, "framework", tb_clock=tb_clock,
                          cycles=exp_counters["cycles"] + 1, **opts)
        _verify(label, {k: v for k, v in out["read"]}, out["counters"], expected, exp_counters)
        rows.append({"variant": label, "cycles_per_s": reps * (exp_counters["cycles"] + 1) / out["seconds"],
                     "build_s_if_cold": build_s})
        _log(f"  lever: {label}: {rows[-1]['cycles_per_s']:.0f} cycles/s")
    return rows


def shapes_table(name="default"):
    cfg = preset(name)
    L = cfg.lanes
    rng = np.random.default_rng(7)
    shapes = [("square", 4 * L, 4 * L, 4 * L, False), ("tall", 32 * L, 2 * L, L, False),
              ("wide", L, 2 * L, 8 * L, False), ("odd", 37, 29, 53, True),
              ("M=1", 1, 4 * L, 4 * L, True), ("issue shape 16L x 4L x 4L", 16 * L, 4 * L, 4 * L, True),
              # an MLP for 8x8 digit images, batch 64: 64 -> 128 -> 64 -> 10, int8
              ("mlp fc1 64->128", 64, 64, 128, True), ("mlp fc2 128->64", 64, 128, 64, True),
              ("mlp fc3 64->10", 64, 64, 10, True)]
    plans, cases = [], []
    for label, M, K, N, quant in shapes:
        A = rng.integers(-128, 128, (M, K), dtype=np.int8)
        B = rng.integers(-128, 128, (K, N), dtype=np.int8)
        q = Quant(multiplier=np.full(N, 1 << 30), shift=np.full(N, -8)) if quant else None
        plans.append(compile_gemm(cfg, A, B, None, q))
        cases.append((label, A, B, q))
    sims = sim_plans(cfg, plans)
    rows, model_rows = [], []
    from ..host.compiler import assemble
    for (label, A, B, q), plan, (blocks, counters) in zip(cases, plans, sims):
        out_model, c_model, _ = run_gemm(cfg, A, B, None, q, "model")
        out_sim = assemble(cfg, plan, blocks)
        if not np.array_equal(out_sim, out_model) or not np.array_equal(out_model, reference_gemm(A, B, None, q)):
            raise RuntimeError(f"shape {label}: results differ between model, sim and reference")
        mc = sum(c["cycles"] for c in c_model)
        rc = sum(c["cycles"] for c in counters)
        rows.append({"shape": label, "M": A.shape[0], "K": A.shape[1], "N": B.shape[1],
                     "runs": len(plan.runs), "model_cycles": mc, "rtl_cycles": rc,
                     "utilisation": plan.macs / (L * L * rc),
                     "mxm_busy": sum(c["mxm_busy"] for c in counters) / rc})
        # golden model speed against np.matmul on the same shape
        reps = 3
        t0 = time.perf_counter()
        for _ in range(reps):
            run_gemm(cfg, A, B, None, q, "model")
        t_model = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        for _ in range(reps * 10):
            A.astype(np.int64) @ B.astype(np.int64)
        t_np = (time.perf_counter() - t0) / (reps * 10)
        model_rows.append({"shape": label, "model_macs_per_s": plan.macs / t_model,
                           "numpy_macs_per_s": plan.macs / t_np, "ratio": t_np / t_model})
    return rows, model_rows


MODELS = ROOT / "tests" / "models"


def network_speed(name="default", presets=("default", "large")):
    """``model_speed.<model>``: the golden model back end of ``lpu run`` on each committed
    network fixture (its committed inputs), in verified MAC/s, and LiteRT's interpreter on the
    same inputs, side by side in one run: reference kernels (the oracle) and its default
    resolver (XNNPACK), whose outputs are compared with the reference's."""
    from ..host.network import load_model, run_network
    from .litert import litert_invoke
    from ..host.runtime import network_gemm, network_report
    rows = []
    for path in sorted(MODELS.glob("*.tflite")):
        if path.stem.startswith("bad_"):
            continue
        x = np.load(MODELS / f"{path.stem}.inputs.npy")
        outs = {}
        row = {"model": path.stem, "batch": len(x)}
        for resolver in ("BUILTIN_REF", "AUTO"):
            t0 = time.perf_counter()          # interpreter set-up included: a fair upper bound
            outs[resolver] = litert_invoke(path, x, resolver)[0]
            row[f"litert_{resolver.lower()}_s"] = time.perf_counter() - t0
        row["xnnpack_bytes_differing"] = int((outs["AUTO"] != outs["BUILTIN_REF"]).sum())
        net = load_model(path)
        for preset_name in presets:
            t0 = time.perf_counter()
            values, records = run_network(net, x, network_gemm(preset(preset_name), "model"))
            seconds = time.perf_counter() - t0
            if not np.array_equal(values[net.output], outs["BUILTIN_REF"]):
                raise RuntimeError(f"{path.stem}: lpu run differs from LiteRT's reference kernels")
            macs = sum(r.get("macs", 0) for r in records)
            row["macs"] = macs
            if preset_name == "default":        # per tile layer, for the plot
                report = network_report(preset(preset_name), records, len(x), 25.0)
                row["layers"] = [{k: layer[k] for k in ("layer", "op", "cycles",
                                                        "host_port_cycles")}
                                 for layer in report["layers"] if layer["where"] == "tile"]
            row[f"model_s.{preset_name}"] = seconds
            row[f"model_speed.{preset_name}"] = macs / seconds
        rows.append(row)
        _log(f"  {path.stem}: " + ", ".join(f"{p} {row[f'model_speed.{p}'] / 1e6:.1f} M MAC/s"
                                              for p in presets) +
             f"; LiteRT reference {row['litert_builtin_ref_s'] * 1e3:.1f} ms, "
             f"XNNPACK {row['litert_auto_s'] * 1e3:.2f} ms")
    return rows


def _one_tile_cycles(cfg, A, layers):
    """A chain's layers run one after another on one tile, the host between them: the
    tile's cycles (host-port transfers not counted, as on the chip)."""
    from model.tile import TileModel
    from ..host.runtime import run_on_device
    total, x = 0, A
    for B, bias, q in layers:
        plan = compile_gemm(cfg, x, B, bias, q)
        _, counters = run_on_device(cfg, plan, TileModel(cfg))
        total += sum(c["cycles"] for c in counters)
        x = reference_gemm(x, B, bias, q)
    return total


def _chip_cycles(cfg, A, layers):
    """The batch's chip cycles, and its chip runs (``lpu.host.chain.pipeline_chains``)."""
    from ..host.chain import pipeline_chains
    chains = pipeline_chains(cfg, A, layers)
    return sum(ch.cycles for ch in chains), chains


def ae_tile():
    """The tile the autoencoder's scaling is measured on: the ``large`` preset (16 lanes)
    with the SRAM to hold the network's 264 KB of weights on a few tiles and a run's batch,
    and an instruction memory for the unrolled pipelined programs."""
    from dataclasses import replace
    return replace(preset("large"), depth=16384, imem_depth=32768, param_depth=128)


def _fixture(stem, rows):
    """A committed network fixture as a chain: its inputs repeated to ``rows`` (flattened)
    and its layers ``(B, bias, quant)``."""
    from ..host.chain import network_layers
    from ..host.network import load_model
    net = load_model(MODELS / f"{stem}.tflite")
    x = np.load(MODELS / f"{stem}.inputs.npy")
    x = np.resize(x, (rows,) + x.shape[1:])        # the fixture's inputs, repeated
    return x.reshape(rows, -1), [(B, bias, q) for _, B, bias, q in
                                 network_layers(net, "single")]


def scaling(name="default", batch=64, width=32, tile_counts=(1, 2, 4, 8), clock_mhz=25.0,
            ae_batch=256):
    """``scaling.<model>.<tiles>``: a chain of quantised layers pipelined over a chip of
    N tiles (consecutive layers per tile, ``lpu.host.chain.place_layers``;
    ``pipeline_chains``, which also tries layers split between two tiles,
    ``place_parts``) against the same layers one after another on one tile: inferences
    per second at ``clock_mhz`` for a batch, latency (cycles for one inference) and the
    scaling efficiency, throughput at N tiles / (N x throughput at one tile). Cycles from
    the model, which the chip testbench holds the RTL to cycle for cycle. Models:
    ``chain<width>x<N>`` (N layers of width x width, the network with as many layers as
    tiles), the digits MLP fixture (3 layers, on 2 and 3 tiles) and the MLPerf Tiny
    autoencoder fixture (10 layers, batch ``ae_batch``, on :func:`ae_tile`). Also returns
    the MLP's pipeline picture data (``lpu.tools.plots.pipeline_bars``)."""
    from dataclasses import replace
    base = preset(name)
    rng = np.random.default_rng(0)
    nets = {}
    for n in tile_counts:
        layers = []
        for _ in range(n):
            q = Quant(multiplier=rng.integers(1 << 29, 1 << 31, width), shift=np.full(width, -9))
            layers.append((rng.integers(-128, 128, (width, width), dtype=np.int8),
                           rng.integers(-999, 999, width).astype(np.int32), q))
        nets[f"chain{width}x{n}"] = (rng.integers(-128, 128, (batch, width), dtype=np.int8),
                                     layers, [n], base)

    nets["digits_mlp"] = _fixture("digits_mlp", batch) + ([2, 3], base)
    nets["anomaly_ae"] = _fixture("anomaly_ae", ae_batch) + (
        [n for n in tile_counts if n > 1], ae_tile())
    out = {}
    for model, (A, layers, counts, cfg1) in nets.items():
        rows, runs = {}, {}
        for n in [1] + counts:
            if n == 1:
                cyc, lat = _one_tile_cycles(cfg1, A, layers), _one_tile_cycles(cfg1, A[:1], layers)
            else:
                cfg = replace(cfg1, tiles=n)
                (cyc, runs[n]), (lat, _) = (_chip_cycles(cfg, A, layers),
                                            _chip_cycles(cfg, A[:1], layers))
            rows[n] = {"cycles": cyc, "latency_cycles": lat,
                       "inferences_per_s": len(A) * clock_mhz * 1e6 / cyc}
            if n > 1:
                rows[n]["placement"] = runs[n][0].describe(cfg)
        for n, r in rows.items():
            r["efficiency"] = r["inferences_per_s"] / (n * rows[1]["inferences_per_s"])
        out[model] = {str(n): dict(r, batch=len(A)) for n, r in rows.items()}
        if model == "digits_mlp":           # the picture: the first run's schedule
            from ..host.chain import run_chain_on_model
            from .plots import pipeline_bars
            cfg = replace(base, tiles=len(layers))
            chain = replace(runs[len(layers)][0], name=f"digits MLP on {name}*{len(layers)}")
            _, _, chip = run_chain_on_model(cfg, chain)
            out_picture = pipeline_bars(cfg, chain, chip)
        _log(f"  {model}: " + ", ".join(f"{n} tile(s) {r['inferences_per_s']:.0f}/s, "
                                        f"efficiency {r['efficiency'] * 100:.0f} %"
                                        for n, r in rows.items()))
    out["digits_cnn"] = _cnn_scaling(base, batch, tile_counts, clock_mhz)
    return out, out_picture


def _cnn_scaling(cfg, batch, tile_counts, clock_mhz):
    """The digits CNN: on one tile (``lpu run``, the host between its layers: its tile
    cycles), and on a chip the compiler's refusal (a convolution's input needs an on-chip
    im2col gather, and MAX_POOL_2D is no tile operation)."""
    from ..host.chain import network_layers
    from ..host.compiler import CompileError
    from ..host.network import load_model, run_network
    from ..host.runtime import network_gemm, network_report
    net = load_model(MODELS / "digits_cnn.tflite")
    x = np.load(MODELS / "digits_cnn.inputs.npy")
    x = np.resize(x, (batch,) + x.shape[1:])
    _, records = run_network(net, x, network_gemm(cfg, "model"))
    cyc = sum(layer["cycles"] for layer in network_report(cfg, records, batch, clock_mhz)["layers"]
              if layer["where"] == "tile")
    out = {"1": {"cycles": cyc, "inferences_per_s": batch * clock_mhz * 1e6 / cyc,
                 "efficiency": 1.0, "batch": batch}}
    for n in tile_counts:
        if n > 1:
            try:
                network_layers(net, "single")
            except CompileError as e:
                out[str(n)] = {"unsupported": str(e)}
            else:
                raise RuntimeError("the digits CNN compiles for a chip now: measure it")
    _log(f"  digits_cnn: 1 tile {out['1']['inferences_per_s']:.0f}/s; on a chip: "
         f"{out[str(max(tile_counts))].get('unsupported', '')}")
    return out


def scaling_on_rtl(tiles=4, batch=256, sub_rows=16):
    """The autoencoder's pipeline on ``tiles`` tiles of :func:`ae_tile` (the placement
    ``pipeline_chains`` would weigh, split layers included: ``place_parts``; ``batch`` rows
    in sub-chunks of ``sub_rows``, one chip run) on the model and on the RTL (Verilator,
    ``rtl.chip.LpuChip``): the bytes and every tile's counters must be equal. Writes
    ``build/bench/rtl_scaling.json`` (``make bench-rtl``; about 20 minutes, most of it
    building the chip)."""
    from dataclasses import replace
    from ..host.chain import (compile_pipeline, place_parts, run_chain_on_model,
                              run_chains_on_sim)
    A, layers = _fixture("anomaly_ae", batch)
    cfg = replace(ae_tile(), tiles=tiles)
    chain = compile_pipeline(cfg, A, layers, sub_rows, -(-batch // sub_rows),
                             place_parts(cfg, layers))
    want, want_counters, _ = run_chain_on_model(cfg, chain)
    t0 = time.perf_counter()
    (got, counters, _), = run_chains_on_sim(cfg, [chain], timeout=5400)
    seconds = time.perf_counter() - t0
    if not np.array_equal(got, want) or counters != want_counters:
        raise RuntimeError(f"the autoencoder on {tiles} tiles: the RTL differs from the model "
                           f"(counters {counters} != {want_counters})")
    one = _one_tile_cycles(ae_tile(), A, layers)
    res = {"tiles": tiles, "batch": batch, "placement": chain.describe(cfg),
           "interval": chain.interval, "cycles": chain.cycles,
           "rtl_cycles": max(c["cycles"] for c in counters), "one_tile_cycles": one,
           "efficiency": one / (tiles * chain.cycles), "sim_s": seconds}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rtl_scaling.json").write_text(json.dumps(res, indent=2))
    _log(f"autoencoder on {tiles} tiles ({res['placement']}): model and RTL "
         f"{res['cycles']} cycles, the same bytes and counters; efficiency "
         f"{res['efficiency'] * 100:.1f} %")
    return res


def regression_times():
    """`make sim` (SEEDS=1, to keep the bench short) with an empty and then a warm cache; then,
    warm, on local processes and on a Dask LocalCluster with as many workers, alternated
    (twice each): the cluster engine's overhead as the ratio of the wall times."""
    res = {}
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(dir=BUILD) as cold:
        env = dict(os.environ, LPU_BUILD_DIR=cold)
        runs = [("cold", []), ("warm", []), ("local_1", []),
                ("cluster_1", ["--cluster", f"local:{workers}"]), ("local_2", []),
                ("cluster_2", ["--cluster", f"local:{workers}"])]
        for label, extra in runs:
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "lpu", "sim", "--seeds", "1"] + extra,
                               env=env, capture_output=True, text=True)
            res[f"make_sim_seeds1_{label}_s"] = time.monotonic() - t0
            if r.returncode != 0:
                raise RuntimeError("regression failed during the bench:\n" + r.stdout[-2000:])
    local = res["make_sim_seeds1_local_1_s"] + res["make_sim_seeds1_local_2_s"]
    cluster = res["make_sim_seeds1_cluster_1_s"] + res["make_sim_seeds1_cluster_2_s"]
    res["cluster_workers"] = workers
    res["cluster_over_local_ratio"] = cluster / local
    _log(f"  warm make sim: local {local / 2:.1f} s, LocalCluster({workers}) {cluster / 2:.1f} s: "
         f"ratio {cluster / local:.3f}")
    return res


def fpga_figures():
    """Every bitstream report (``make bitstream``), full builds and synthesis-only ones, by
    build folder name."""
    reports = sorted((BUILD / "fpga").glob("*/report.json")) if (BUILD / "fpga").exists() else []
    return {path.parent.name: json.loads(path.read_text()) for path in reports}


def fpga_table(reports):
    """The Markdown table of bitstream reports (``make bench``'s FPGA section, and the
    README's, by ``lpu fpga-table --readme``)."""
    lines = ["| build | preset | stage | clock | LUT/LC | FF | DSP | BRAM | Fmax (MHz) | target "
             "(MHz) | timing met | peak GOPS | build time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    frac = (lambda ua: f"{ua[0]:,} / {ua[1]:,}" if ua else "-")
    for build, r in reports.items():
        clock = r.get("clock") or {"source": "oscillator"}
        mhz = f" {clock['mhz']:g} MHz" if clock.get("mhz") else ""
        head = f"| {build} | {r.get('preset')} | {r.get('stage')} | {clock['source']}{mhz} |"
        if r.get("fits") is False:      # a failed build: what was over-full
            # place and route's over-full report has "utilisation"; synthesis's has its
            # resources at the top level, each (used, available)
            usage = r.get("utilisation") or {k: v for k, v in r.items()
                                             if isinstance(v, list) and len(v) == 2}
            over = ", ".join(f"{k} {frac(ua)}" for k, ua in overfull(usage).items())
            lines.append(f"{head} does not fit: {over} | | | | | | | | |")
            continue
        if r.get("stopped_after_min"):  # stopped at its wall-clock limit: no Fmax
            lines.append(f"{head} stopped at its {r['stopped_after_min']:g}-minute limit "
                         f"(router: {r.get('router_progress') or 'not reached'}) "
                         f"| | | | | | no | | {r.get('seconds', 0) / 60:.1f} min |")
            continue
        timing = ("-" if "timing_met" not in r else "yes" if r["timing_met"] else "no")
        lines.append(f"{head} {frac(r.get('logic'))} | {frac(r.get('ff'))} | "
                     f"{frac(r.get('dsp'))} | {frac(r.get('bram'))} | {r.get('fmax_mhz', '-')} | "
                     f"{r.get('target_mhz', '-')} | {timing} | {r.get('peak_gops', '-')} | "
                     f"{r.get('seconds', 0) / 60:.1f} min |")
    return lines


def seed_sweeps(reports):
    """The Markdown table of placer-seed sweeps (``make bitstream SEED=N``) among bitstream
    reports: one row for each netlist and target built with more than one seed, the default
    seed's build (the same folder name without ``-seed<N>``) included; [] if there is none."""
    groups = {}
    for build, r in reports.items():
        if r.get("stage") != "place and route" or r.get("fits") is False:
            continue
        groups.setdefault((re.sub(r"-seed\d+$", "", build), r.get("target_mhz")), []).append(r)
    lines = []
    for (base, target), runs in groups.items():
        if len(runs) < 2 or all(r.get("seed") is None for r in runs):
            continue
        runs.sort(key=lambda r: -1 if r.get("seed") is None else r["seed"])
        fmax = sorted(r["fmax_mhz"] for r in runs if "fmax_mhz" in r)
        seeds = ", ".join("default" if r.get("seed") is None else str(r["seed"]) for r in runs)
        lines.append(f"| {base} | {target} | {len(runs)} ({seeds}) | "
                     f"{sum(bool(r.get('timing_met')) for r in runs)} | "
                     + (f"{fmax[0]} / {float(np.median(fmax)):g} / {fmax[-1]}" if fmax else "-")
                     + f" | {sum(bool(r.get('stopped_after_min')) for r in runs)} |")
    if not lines:
        return []
    return ["| build | target (MHz) | placer seeds | timing met | Fmax (MHz): lowest / median / "
            "highest | stopped at the limit |", "|---|---|---|---|---|---|"] + lines


def fpga_tables(reports):
    """The FPGA table of ``reports`` and, under it, their seed sweeps' (``lpu fpga-table`` and
    ``make bench`` alike)."""
    sweeps = seed_sweeps(reports)
    return fpga_table(reports) + (["", "Placer-seed sweeps (`SEED=`):", ""] + sweeps
                                  if sweeps else [])


def verification_figures():
    """The regression's strength as last measured: mutation score (``make mutate``),
    functional coverage (``make sim``) and source-line coverage (``make coverage``)."""
    out = {}
    sources = {"mutation": (BUILD / "mutate" / "report.json",
                            ("score", "killed", "survived", "equivalent", "stillborn", "mutants",
                             "preset", "seed", "wall_s")),
               "functional_coverage": (BUILD / "sim" / "coverage.json",
                                       ("percent", "hit", "declared", "runs")),
               "source_coverage": (BUILD / "coverage" / "report.json",
                                   ("percent", "lines_covered", "lines", "presets"))}
    for name, (path, keys) in sources.items():
        if path.exists():
            r = json.loads(path.read_text())
            out[name] = {k: r.get(k) for k in keys}
    return out


def _md(results):
    lines = ["# lpu-cosim benchmark", "", f"Machine: {results['machine']}", ""]
    lines += ["## Simulation throughput (one compiled GEMM program, repeated; results verified)", "",
              "| preset | GEMM | native cycles/s | framework cycles/s | naive cocotb cycles/s | framework / native | framework verified MAC/s |",
              "|---|---|---|---|---|---|---|"]
    for name, r in results["sim_throughput"].items():
        lines.append(f"| {name} | {r['gemm']} | {r['native_cycles_per_s']:,.0f} | "
                     f"{r['framework_cycles_per_s']:,.0f} | {r['naive_cycles_per_s']:,.0f} | "
                     f"{r['ratio_framework_native']:.2f} | {r['framework_macs_per_s']:,.0f} |")
    if results.get("levers"):
        lines += ["", "## Levers (default preset, framework path, one change at a time)", "",
                  "| variant | cycles/s | build time (cold) |", "|---|---|---|"]
        for r in results["levers"]:
            lines.append(f"| {r['variant']} | {r['cycles_per_s']:,.0f} | {r['build_s_if_cold']:.0f} s |")
    lines += ["", "## Utilisation (default preset; model cycles = RTL cycles)", "",
              "| shape | M x K x N | runs | model cycles | RTL cycles | utilisation | MXM busy |",
              "|---|---|---|---|---|---|---|"]
    for r in results["shapes"]:
        lines.append(f"| {r['shape']} | {r['M']}x{r['K']}x{r['N']} | {r['runs']} | {r['model_cycles']} | "
                     f"{r['rtl_cycles']} | {r['utilisation'] * 100:.1f} % | {r['mxm_busy'] * 100:.1f} % |")
    lines += ["", "## Golden model speed", "", "| shape | model MAC/s | np.matmul (int64) MAC/s | model / numpy |",
              "|---|---|---|---|"]
    for r in results["model_speed"]:
        lines.append(f"| {r['shape']} | {r['model_macs_per_s']:,.0f} | {r['numpy_macs_per_s']:,.0f} | {r['ratio']:.3f} |")
    if results.get("networks"):
        lines += ["", "## Real networks: golden model (`lpu run --backend model`) and LiteRT", "",
                  "| model | batch | MACs | model M MAC/s (default) | model M MAC/s (large) | "
                  "LiteRT reference ms | LiteRT XNNPACK ms | XNNPACK bytes != reference |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in results["networks"]:
            lines.append(f"| {r['model']} | {r['batch']} | {r['macs']:,} | "
                         f"{r['model_speed.default'] / 1e6:.1f} | {r['model_speed.large'] / 1e6:.1f} | "
                         f"{r['litert_builtin_ref_s'] * 1e3:.1f} | {r['litert_auto_s'] * 1e3:.2f} | "
                         f"{r['xnnpack_bytes_differing']} |")
    if results.get("regression"):
        lines += ["", "## Regression time", ""]
        for k, v in results["regression"].items():
            lines.append(f"- {k}: {v:.0f} s" if k.endswith("_s") else f"- {k}: {v:.3f}")
    if results.get("verification"):
        lines += ["", "## Strength of the regression (last `make mutate`, `make sim`, "
                  "`make coverage`)", ""]
        for k, v in results["verification"].items():
            lines.append(f"- {k}: " + ", ".join(f"{a} {b}" for a, b in v.items()))
    lines += ["", "## FPGA", ""]
    if results["fpga"]:
        lines += fpga_tables(results["fpga"])
    else:
        lines.append("No bitstream reports found (run `make bitstream BOARD=...` first).")
    return "\n".join(lines) + "\n"


def run_bench(presets=("default", "large"), with_levers=True, with_regression=True):
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
               "date": time.strftime("%Y-%m-%d %H:%M"), "sim_throughput": {}}
    for name in presets:
        _log(f"simulation throughput: {name}")
        results["sim_throughput"][name] = sim_throughput(name)
        r = results["sim_throughput"][name]
        _log(f"  native {r['native_cycles_per_s']:.0f}, framework {r['framework_cycles_per_s']:.0f}, "
             f"naive {r['naive_cycles_per_s']:.0f} cycles/s; framework/native {r['ratio_framework_native']:.2f}")
    if with_levers:
        _log("levers")
        results["levers"] = levers()
    _log("utilisation table and model speed")
    results["shapes"], results["model_speed"] = shapes_table()
    _log("real networks: golden model and LiteRT")
    results["networks"] = network_speed()
    for r in results["networks"]:
        results[f"model_speed.{r['model']}"] = r["model_speed.default"]
    if with_regression:
        _log("regression time (cold, warm)")
        results["regression"] = regression_times()
    _log("scaling over a chip's tiles (batch 64; the autoencoder 256)")
    results["scaling"], results["pipeline"] = scaling()
    results["fpga"] = fpga_figures()
    results["verification"] = verification_figures()
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    (OUT / "results.md").write_text(_md(results))
    from .plots import plot_bench
    pngs = plot_bench(results, OUT)
    _log(f"wrote {OUT / 'results.json'}, {OUT / 'results.md'} and {len(pngs)} plots")
    return results
