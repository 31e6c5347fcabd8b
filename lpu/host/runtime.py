"""One host runtime for every back end: compile a GEMM once, run its programs on a device,
assemble the result.

A *device* is a :class:`lpu.contract.hostport.Device`: ``model`` is
:class:`model.tile.TileModel`, ``fpga`` a :class:`lpu.host.device.BridgeDevice`; ``sim``
runs the same operations through the tile's host port in Verilator under cocotb (batched: the
whole job goes to one simulator process, see ``tb/run_job.py``).
"""

import json
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

from .compiler import OUT_BANK, CompileError, Quant, assemble, collect, compile_gemm
from ..contract.config import BOARD_CLOCK_MHZ, ConfigError, preset
from .device import DeviceError
from .errors import UserError
from ..contract.hostport import load_run
from ..contract.isa import ROUNDING

__all__ = ["run_gemm", "gemm_command", "load_quant", "QuantError", "result_regions"]


class QuantError(ValueError):
    pass


def result_regions(cfg, run):
    """(bank, addr, count) of the SRAM words holding a run's results."""
    if not run.emits:
        return []
    n = run.n_tiles * run.m_count
    banks = [OUT_BANK] if run.quant else [(OUT_BANK + p) % cfg.banks for p in range(4)]
    return [(b, run.out_base, n) for b in banks]


def run_on_device(cfg, plan, dev, timeline=None):
    """Run every run of ``plan`` on a device with the host-port operations (the golden
    model, or a board behind its serial bridge); (blocks, counters). ``timeline``: a list to
    append each run's events to (``lpu.host.trace``): the model's own, or for a board (which
    shows none) the model's prediction of them."""
    blocks, counters = [], []
    for run in plan.runs:
        load_run(dev, run)
        counters.append(dev.run(run.program))
        if timeline is not None:
            from model.tile import schedule
            from .trace import timing_events
            timing = getattr(dev, "last_timing", None) or schedule(run.program, cfg)
            timeline.append(_timeline_entry(cfg, run, counters[-1], timing_events(timing)))
        blocks.append(collect(cfg, plan, run, dev.read_sram))
    return blocks, counters


def _timeline_entry(cfg, run, counters, events):
    return {"program": run.program, "events": events, "counters": counters,
            "host": host_port_split(cfg, run)}


def _model_backend(cfg, plan, port=None, timeline=None):
    from model.tile import TileModel
    return run_on_device(cfg, plan, TileModel(cfg), timeline)


def _fpga_backend(cfg, plan, port=None, timeline=None):
    from .device import BridgeDevice, open_serial
    if not port:
        raise QuantError("--backend fpga needs --port PORT (a serial device, or the path "
                         "printed by 'lpu serve-sim')")
    with open_serial(port) as ser:
        return run_on_device(cfg, plan, BridgeDevice(ser, cfg), timeline)


def sim_job(cfg, runs, monitor=False):
    """The pickled job ``tb/run_job.py`` (and the benchmarks) execute: each run and the
    SRAM regions to read back after it; ``monitor``: record every run's unit events."""
    return {"runs": [{"run": run, "read": result_regions(cfg, run)} for run in runs],
            "monitor": monitor}


def run_sim_job(design, cfg, test_module, job, timeout=1800):
    """Run a pickled ``job`` in one simulator process of ``design`` under the testbench
    ``test_module`` (``tb/run_job.py``, ``tb/run_chip_job.py``); returns what it wrote back."""
    from ..tools.simulation import BUILD, run_testbench
    (BUILD / "sim").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{design}-", dir=BUILD / "sim") as tmp:
        work = Path(tmp)
        (work / "job.pkl").write_bytes(pickle.dumps(job))
        res = run_testbench(design, cfg, seed=0, run_dir=work / "run", timeout=timeout,
                            test_module=test_module,
                            extra_env={"LPU_JOB": work / "job.pkl", "LPU_JOB_OUT": work / "out.pkl"},
                            log=lambda s: print(s, file=sys.stderr))
        if not res.passed or not (work / "out.pkl").exists():
            raise RuntimeError(f"{design} simulation failed: {res.message}")
        return pickle.loads((work / "out.pkl").read_bytes())


def sim_plans(cfg, plans, timeout=1800, timeline=None):
    """Run every run of ``plans`` in one simulator process; (blocks, counters) per plan.
    ``timeline``: a list to append each run's observed events to (the tile's probe port)."""
    runs = [run for plan in plans for run in plan.runs]
    out = iter(run_sim_job("tile", cfg, "tb.run_job", sim_job(cfg, runs, timeline is not None),
                           timeout)["runs"])
    results = []
    for plan in plans:
        blocks, counters = [], []
        for run in plan.runs:
            r = next(out)
            regions = {(b, a, n): words for (b, a, n), words in r["read"]}
            blocks.append(collect(cfg, plan, run, lambda b, a, n, regions=regions: regions[(b, a, n)]))
            counters.append(r["counters"])
            if timeline is not None:
                timeline.append(_timeline_entry(cfg, run, r["counters"], r["events"]))
        results.append((blocks, counters))
    return results


def _sim_backend(cfg, plan, port=None, timeline=None):
    return sim_plans(cfg, [plan], timeline=timeline)[0]


BACKENDS = {"model": _model_backend, "sim": _sim_backend, "fpga": _fpga_backend}


def run_gemm(cfg, A, B, bias=None, quant=None, backend="model", port=None, timeline=None):
    """Returns (result, per-run counters, plan); ``timeline``: see :func:`run_on_device`."""
    plan = compile_gemm(cfg, A, B, bias, quant)
    blocks, counters = BACKENDS[backend](cfg, plan, port, timeline)
    return assemble(cfg, plan, blocks), counters, plan


# ---- the CLI's input checking --------------------------------------------------------
def _load_npy(path, what):
    p = Path(path)
    if not p.is_file():
        raise QuantError(f"{what} file '{path}' not found")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as e:
        raise QuantError(f"{what} file '{path}' is not a readable .npy file ({type(e).__name__})") from None


QUANT_KEYS = {"multiplier", "shift", "output_zero_point", "input_zero_point",
              "activation_min", "activation_max", "rounding"}


def _int(v, key):
    if isinstance(v, bool) or not isinstance(v, int):
        raise QuantError(f"quant key '{key}' must be an integer, got {json.dumps(v)}")
    return v


def _per_channel(q, key, N, lo, hi):
    v = q[key]
    vals = [_int(x, key) for x in v] if isinstance(v, list) else [_int(v, key)] * N
    if isinstance(v, list) and len(vals) != N:
        raise QuantError(f"quant key '{key}' has {len(vals)} values, N is {N}")
    for x in vals:
        if not lo <= x <= hi:
            raise QuantError(f"quant key '{key}' value {x} is out of range [{lo}, {hi}]")
    return np.array(vals, dtype=np.int64)


def load_quant(path, N):
    p = Path(path)
    if not p.is_file():
        raise QuantError(f"quant file '{path}' not found")
    try:
        q = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QuantError(f"quant file '{path}' is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(q, dict):
        raise QuantError(f"quant file '{path}' must hold a JSON object")
    unknown = sorted(set(q) - QUANT_KEYS)
    if unknown:
        raise QuantError(f"unknown quant key '{unknown[0]}' (allowed: {', '.join(sorted(QUANT_KEYS))})")
    for key in ("multiplier", "shift"):
        if key not in q:
            raise QuantError(f"quant key '{key}' is missing")
    scalars = {}
    for key, default in (("output_zero_point", 0), ("input_zero_point", 0),
                         ("activation_min", -128), ("activation_max", 127)):
        v = _int(q.get(key, default), key)
        if not -128 <= v <= 127:
            raise QuantError(f"quant key '{key}' value {v} is out of range [-128, 127]")
        scalars[key] = v
    if scalars["activation_min"] > scalars["activation_max"]:
        raise QuantError(f"activation_min {scalars['activation_min']} > activation_max "
                         f"{scalars['activation_max']}")
    rounding = q.get("rounding", "single")
    if rounding not in ROUNDING:
        raise QuantError(f"quant key 'rounding' must be one of {', '.join(map(json.dumps, ROUNDING))}, "
                         f"got {json.dumps(rounding)}")
    return Quant(multiplier=_per_channel(q, "multiplier", N, 0, (1 << 31) - 1),
                 shift=_per_channel(q, "shift", N, -31, 30), rounding=rounding, **scalars)


def _check_matrix(x, name, dtype, ndim):
    if x.dtype != np.dtype(dtype):
        raise QuantError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if x.ndim != ndim:
        raise QuantError(f"{name} must have rank {ndim}, got shape {x.shape}")
    if 0 in x.shape:
        raise QuantError(f"{name} must not be empty, got shape {x.shape}")


def _gemm_layers(args, A):
    """``lpu gemm``'s layers: per B matrix (B, bias, quant), K matching the columns before
    it; ``--bias`` and ``--quant`` are comma lists with one file per B."""
    bs = args.b
    lists = {}
    for flag in ("bias", "quant"):
        value = getattr(args, flag)
        paths = value.split(",") if value else [None] * len(bs)
        if len(paths) != len(bs):
            raise QuantError(f"--{flag} names {len(paths)} file(s) for {len(bs)} B matrices "
                             f"(one per B, comma-separated)")
        lists[flag] = paths
    layers, cols = [], A.shape[1]
    for i, (b, bias_path, quant_path) in enumerate(zip(bs, lists["bias"], lists["quant"])):
        name = "B" if len(bs) == 1 else f"B{i + 1}"
        B = _load_npy(b, name)
        _check_matrix(B, name, "int8", 2)
        if cols != B.shape[0]:
            before = f"A is {A.shape[0]}x{cols}" if i == 0 else f"B{i} gives {cols} columns"
            raise QuantError(f"K mismatch: {before}, {name} is {B.shape[0]}x{B.shape[1]}")
        N = cols = B.shape[1]
        bias = None
        if bias_path:
            bias = _load_npy(bias_path, "BIAS")
            _check_matrix(bias, "BIAS", "int32", 1)
            if bias.shape[0] != N:
                raise QuantError(f"BIAS has {bias.shape[0]} values, N is {N}")
        layers.append((B, bias, load_quant(quant_path, N) if quant_path else None))
    return layers


def _gemm_on_chip(args, cfg, A, layers):
    """``lpu gemm A B1 B2 ... [--tiles N]``: the GEMMs as a chain of quantised layers
    streaming through a chip of N tiles (``lpu.host.chain.run_layers_on_chip``)."""
    from .chain import run_layers_on_chip
    from .trace import build_chip_trace, write_trace
    missing = [i + 1 for i, (_, _, q) in enumerate(layers) if q is None]
    if missing:
        raise QuantError(f"a chain of GEMMs streams int8 between its layers: every B needs "
                         f"its --quant (none for B{missing[0]})")
    if args.backend not in ("model", "sim"):
        raise QuantError(f"a chip runs on the model or sim back end, not '{args.backend}'")
    out_path = _output_path(args.output, "output")
    trace_path = _output_path(args.trace, "trace") if args.trace else None
    timeline = [] if trace_path else None
    out, counters, chains = run_layers_on_chip(cfg, A, layers, args.backend, timeline)
    _save_atomic(out_path, out)
    if trace_path:
        write_trace(trace_path, build_chip_trace(cfg, timeline, backend=args.backend,
                                                 config_name=f"{args.config}*{cfg.tiles}"))
    cycles = sum(max(c["cycles"] for c in cc) for cc in counters)
    print(f"{args.backend}: {A.shape[0]}x" + "x".join(str(np.shape(B)[0]) for B, _, _ in layers)
          + f"x{np.shape(layers[-1][0])[1]} int8 chain of {len(layers)} GEMMs on {args.config} x "
          f"{cfg.tiles} tiles (layers per tile {chains[0].describe(cfg)}), {len(chains)} chip "
          f"run(s): cycles {cycles}")
    return 0


def gemm_command(args):
    try:
        if args.backend not in BACKENDS:
            raise QuantError(f"unknown backend '{args.backend}' (choose: {', '.join(BACKENDS)})")
        cfg = preset(args.config)
        A = _load_npy(args.a, "A")
        _check_matrix(A, "A", "int8", 2)
        layers = _gemm_layers(args, A)
        if len(layers) > 1 or args.tiles != 1:
            from dataclasses import replace
            return _gemm_on_chip(args, replace(cfg, tiles=args.tiles), A, layers)
        (B, bias, quant), = layers
        out_path = _output_path(args.output, "output")
        trace_path = _output_path(args.trace, "trace") if args.trace else None
        if args.backend == "fpga" and not args.port:
            raise QuantError("--backend fpga needs --port PORT (a serial device, or the path "
                             "printed by 'lpu serve-sim')")
        timeline = [] if trace_path else None
        out, counters, plan = run_gemm(cfg, A, B, bias, quant, args.backend, args.port, timeline)
    except (QuantError, ConfigError, CompileError, DeviceError) as e:
        raise UserError(str(e)) from None
    if trace_path:
        from .trace import build_trace, write_trace
        write_trace(trace_path, build_trace(cfg, timeline, backend=args.backend,
                                            config_name=args.config))
    cycles = sum(c["cycles"] for c in counters)
    busy = sum(c["mxm_busy"] for c in counters)
    util = plan.macs / (cfg.lanes ** 2 * cycles)
    _save_atomic(out_path, out)
    print(f"{args.backend}: {plan.M}x{plan.K}x{plan.N} {'int8' if plan.quant else 'int32'} "
          f"on {args.config} in {len(plan.runs)} run(s): cycles {cycles}, "
          f"utilisation {util * 100:.2f} % (MXM busy {busy} cycles)")
    return 0


# ---- real networks: lpu run ------------------------------------------------------------
def default_clock_mhz(preset_name):
    """The default --clock-mhz: a board preset's clock (the iCEBreaker's 12 MHz oscillator),
    or, for any other preset, the ULX3S build's tile clock (its PLL's)."""
    board = preset_name.partition("*")[0]
    return BOARD_CLOCK_MHZ.get(board, BOARD_CLOCK_MHZ["ulx3s"])


def host_port_split(cfg, run):
    """Host-port accesses (one per tile cycle) that load a run and start it, and that read
    back its results and counters."""
    from ..contract.isa import COUNTERS
    words = sum(len(w) for _, w in run.sram.values())
    params = len(run.params) * cfg.param_parts
    results = sum(n for _, _, n in result_regions(cfg, run))
    return words + params + len(run.program) + 1, results + len(COUNTERS)


def host_port_accesses(cfg, run):
    """The run's transfer cost on a host wired to the port (:func:`host_port_split`)."""
    return sum(host_port_split(cfg, run))


def network_report(cfg, records, batch, clock_mhz):
    """Per-layer figures (Vela-like) and totals, as a JSON-able dict."""
    layers = []
    for r in records:
        row = {"layer": r["layer"], "op": r["op"], "where": r["where"]}
        if r["where"] == "tile":
            cycles = sum(c["cycles"] for c in r["counters"])
            row.update(gemm="x".join(map(str, r["gemm"])), macs=r["macs"], runs=r["runs"],
                       cycles=cycles,
                       host_port_cycles=sum(host_port_accesses(cfg, run) for run in r["plan"].runs),
                       mxm_utilisation=r["macs"] / (cfg.lanes ** 2 * cycles))
        layers.append(row)
    tile = [row for row in layers if row["where"] == "tile"]
    compute = sum(row["cycles"] for row in tile)
    transfer = sum(row["host_port_cycles"] for row in tile)
    total = compute + transfer
    seconds = total / (clock_mhz * 1e6)
    macs = sum(row["macs"] for row in tile)
    return {"layers": layers, "total": {
        "batch": batch, "macs": macs, "tile_cycles": compute, "host_port_cycles": transfer,
        "cycles": total, "tile_share": compute / total if total else 0.0,
        "mxm_utilisation": macs / (cfg.lanes ** 2 * compute) if compute else 0.0,
        "clock_mhz": clock_mhz, "latency_ms": seconds * 1e3,
        "latency_per_inference_ms": seconds * 1e3 / batch,
        "inferences_per_s": batch / seconds if seconds else 0.0}}


def format_report(report):
    lines = [f"{'layer':>5}  {'operator':<16} {'where':<5} {'GEMM (MxKxN)':>16} {'MACs':>10} "
             f"{'runs':>4} {'cycles':>9} {'host port':>9} {'MXM util':>8}"]
    for r in report["layers"]:
        if r["where"] == "tile":
            lines.append(f"{r['layer']:>5}  {r['op']:<16} {'tile':<5} {r['gemm']:>16} "
                         f"{r['macs']:>10,} {r['runs']:>4} {r['cycles']:>9,} "
                         f"{r['host_port_cycles']:>9,} {r['mxm_utilisation'] * 100:>7.1f}%")
        else:
            lines.append(f"{r['layer']:>5}  {r['op']:<16} {'host':<5} {'-':>16} {'-':>10} "
                         f"{'-':>4} {'-':>9} {'-':>9} {'-':>8}")
    t = report["total"]
    lines.append(f"total: {t['cycles']:,} cycles = {t['tile_cycles']:,} on the tile + "
                 f"{t['host_port_cycles']:,} host-port transfers (tile share "
                 f"{t['tile_share'] * 100:.1f} %), {t['macs']:,} MACs, MXM utilisation "
                 f"{t['mxm_utilisation'] * 100:.1f} %")
    lines.append(f"at {t['clock_mhz']:g} MHz: {t['latency_ms']:.3f} ms for {t['batch']} "
                 f"inference(s), {t['latency_per_inference_ms']:.3f} ms each, "
                 f"{t['inferences_per_s']:,.1f} inferences/s")
    return "\n".join(lines)


def network_gemm(cfg, backend, port=None, timeline=None):
    """A ``gemm(A, B, bias, quant)`` that runs one layer on ``backend``."""
    if backend not in BACKENDS:
        raise QuantError(f"unknown backend '{backend}' (choose: {', '.join(BACKENDS)})")
    if backend == "fpga" and not port:
        raise QuantError("--backend fpga needs --port PORT (a serial device, or the path "
                         "printed by 'lpu serve-sim')")
    return lambda A, B, bias, quant: run_gemm(cfg, A, B, bias, quant, backend, port, timeline)


def _save_atomic(path, array):
    """Write ``array`` to ``path`` so a failure never leaves a partial file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def _save_json(path, data):
    """Write JSON so a failure never leaves a partial file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _output_path(path, what):
    p = Path(path)
    if p.parent and not p.parent.exists():
        raise QuantError(f"{what} folder '{p.parent}' does not exist")
    return p


def chip_report(cfg, chip_layers, chunk_counters, chains, batch, clock_mhz):
    """``lpu run --tiles N``: per tile its layers (and the output columns it computes of
    each: a split layer's part), and the chip's totals (every chunk loaded,
    run with every tile at once, read back). A tile's MACs count the batch's real rows."""
    tiles = []
    for k, parts in enumerate(chains[0].placement):
        layers = [chip_layers[j] for j, _, _ in parts]
        plans = chains[0].part_plans[k]
        busy = sum(cc[k]["cycles"] for cc in chunk_counters)
        macs = sum(batch * p.K * p.N for p in plans)
        tiles.append({"tile": k, "layers": [layer.index for layer in layers],
                      "columns": [[a * cfg.lanes, a * cfg.lanes + p.N]
                                  for (_, a, _), p in zip(parts, plans)],
                      "op": "+".join(sorted({layer.op for layer in layers})),
                      "gemm": ", ".join(f"{batch}x{p.K}x{p.N}" for p in plans), "macs": macs,
                      "cycles": busy, "mxm_utilisation": macs / (cfg.lanes ** 2 * busy)})
    compute = sum(max(c["cycles"] for c in cc) for cc in chunk_counters)
    transfer = sum(sum(sum(host_port_split(cfg, run)) for run in c.runs) for c in chains)
    total = compute + transfer
    seconds = total / (clock_mhz * 1e6)
    macs = sum(t["macs"] for t in tiles)
    return {"tiles": tiles, "total": {
        "tiles": cfg.tiles, "link_latency": cfg.link_latency, "batch": batch,
        "chunks": len(chains), "macs": macs, "chip_cycles": compute,
        "host_port_cycles": transfer, "cycles": total,
        "mxm_utilisation": macs / (cfg.tiles * cfg.lanes ** 2 * compute),
        "clock_mhz": clock_mhz, "latency_ms": seconds * 1e3,
        "inferences_per_s": batch / seconds if seconds else 0.0}}


def format_chip_report(report):
    lines = [f"{'tile':>4}  {'layers':>6}  {'operator':<16} {'GEMM (MxKxN)':>16} {'MACs':>10} "
             f"{'cycles':>9} {'MXM util':>8}"]
    for t in report["tiles"]:
        layers = ",".join(map(str, t["layers"]))
        lines.append(f"{t['tile']:>4}  {layers:>6}  {t['op']:<16} {t['gemm']:>16} "
                     f"{t['macs']:>10,} {t['cycles']:>9,} {t['mxm_utilisation'] * 100:>7.1f}%")
    t = report["total"]
    lines.append(f"chip of {t['tiles']} tiles (link latency {t['link_latency']}): "
                 f"{t['chunks']} chunk(s), {t['cycles']:,} cycles = {t['chip_cycles']:,} on "
                 f"the chip + {t['host_port_cycles']:,} host-port transfers, MXM utilisation "
                 f"{t['mxm_utilisation'] * 100:.1f} % of all tiles")
    lines.append(f"at {t['clock_mhz']:g} MHz: {t['latency_ms']:.3f} ms for {t['batch']} "
                 f"inference(s), {t['inferences_per_s']:,.1f} inferences/s")
    return "\n".join(lines)


def run_command(args):
    from .network import NetworkError, load_model, run_network
    if args.tiles != 1:
        return _run_on_chip(args)
    try:
        cfg = preset(args.config)
        if args.clock_mhz is not None and not args.clock_mhz > 0:
            raise QuantError(f"--clock-mhz must be > 0, got {args.clock_mhz}")
        out_path = _output_path(args.output, "output")
        report_path = _output_path(args.report, "report") if args.report else None
        trace_path = _output_path(args.trace, "trace") if args.trace else None
        timeline = [] if trace_path else None
        gemm = network_gemm(cfg, args.backend, args.port, timeline)
        net = load_model(args.model)
        x = _load_npy(args.input, "INPUT")
        values, records = run_network(net, x, gemm, args.rounding)
    except (QuantError, ConfigError, CompileError, DeviceError, NetworkError) as e:
        raise UserError(str(e)) from None
    report = network_report(cfg, records, x.shape[0], args.clock_mhz or default_clock_mhz(args.config))

    def trace():
        from .trace import build_trace
        layers, first = [], 0
        for r in records:
            if r["where"] == "tile":
                layers.append((f"layer {r['layer']} {r['op']}", first, len(r["plan"].runs)))
                first += len(r["plan"].runs)
        return build_trace(cfg, timeline, backend=args.backend, config_name=args.config,
                           layers=layers)
    return _finish_run(args, values[net.output], report, out_path, report_path, trace_path,
                       trace, f"on {args.config}, {x.shape[0]}", format_report)


def _finish_run(args, out, report, out_path, report_path, trace_path, trace, where, fmt):
    """``lpu run``'s outputs, on one tile or a chip: the result, the trace (``trace()``
    builds it), the report, and the printed summary."""
    report.update(model=str(args.model), backend=args.backend, config=args.config,
                  rounding=args.rounding)
    _save_atomic(out_path, out)
    if trace_path:
        from .trace import write_trace
        write_trace(trace_path, trace())
    if report_path:
        _save_json(report_path, report)
    print(f"{args.backend}: {Path(args.model).name} {where} inference(s), "
          f"rounding {args.rounding}")
    print(fmt(report))
    return 0


def _run_on_chip(args):
    """``lpu run --tiles N``: the network's layers streaming through a chip."""
    from dataclasses import replace
    from .chain import run_network_on_chip
    from .network import NetworkError, load_model
    try:
        if args.backend not in ("model", "sim"):
            raise QuantError(f"--tiles {args.tiles} runs on the model or sim back end, not "
                             f"'{args.backend}'")
        if args.clock_mhz is not None and not args.clock_mhz > 0:
            raise QuantError(f"--clock-mhz must be > 0, got {args.clock_mhz}")
        cfg = replace(preset(args.config), tiles=args.tiles)
        out_path = _output_path(args.output, "output")
        report_path = _output_path(args.report, "report") if args.report else None
        trace_path = _output_path(args.trace, "trace") if args.trace else None
        net = load_model(args.model)
        x = _load_npy(args.input, "INPUT")
        timeline = [] if trace_path else None
        out, layers, counters, chains = run_network_on_chip(net, x, cfg, args.backend,
                                                            args.rounding, timeline)
    except (QuantError, ConfigError, CompileError, DeviceError, NetworkError) as e:
        raise UserError(str(e)) from None
    report = chip_report(cfg, layers, counters, chains, x.shape[0],
                         args.clock_mhz or default_clock_mhz(args.config))

    def trace():
        from .trace import build_chip_trace
        return build_chip_trace(cfg, timeline, backend=args.backend,
                                config_name=f"{args.config}*{args.tiles}")
    return _finish_run(args, out, report, out_path, report_path, trace_path, trace,
                       f"on {args.config} x {args.tiles} tiles, {x.shape[0]}",
                       format_chip_report)
