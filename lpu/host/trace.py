"""Timelines of a workload in the Chrome trace-event format (``{"traceEvents": [...]}``), which
Perfetto's UI (ui.perfetto.dev) and ``chrome://tracing`` open.

A timeline is built from the cycles of the unit-boundary events (``lpu.contract.timing.EVENTS``)
of every run: on the ``model`` back end they are the model's prediction
(``model.tile.schedule``), on ``sim`` what the RTL did (the tile's probe port, watched by
``tb.host.Monitor``). One process per tile, one track (thread) per unit:

* ``sequencer``: one slice per instruction, on its issue cycle;
* ``bank b read`` / ``bank b write``: each stream an instruction reads from a bank (LW's rows,
  MM's activations), each VX's result rows written to a bank (int32: four banks);
* ``LW (weight port)``, ``MXM``, ``accumulators``, ``VXM``: each instruction's vectors through
  the unit, first to last;
* ``host``: the host-port transfers before and after each run (one access per cycle: their
  length is computed from the run, on every back end);
* ``network``: one slice per layer (``lpu run``); counters: ``MXM utilisation %`` per run.

Timestamps are tile cycles (the viewer's "1 us" is one cycle). Stream slices are placed from
the events through the contract's latencies (``lpu.contract.config``), so a slice moves
when, and only when, an observed event does. :func:`diff_traces` compares two timelines
event by event and says where they first differ (``lpu trace-diff``).
"""

import json
from pathlib import Path

from ..contract.isa import Op
from ..contract.timing import EVENTS

__all__ = ["timing_events", "run_timeline", "build_trace", "build_chip_trace", "diff_traces",
           "write_trace", "load_trace", "TraceError"]


class TraceError(ValueError):
    pass


def timing_events(timing):
    """The event cycles of a ``model.tile.Timing`` (the prediction), sorted, by event name."""
    return {name: sorted(getattr(timing, name)) for name in EVENTS}


def run_timeline(cfg, program, events):
    """The slices of one run: a list of (track, name, start cycle, duration, args), from
    ``events`` (by name, cycles from the run's cycle 0). Each instruction takes its vectors
    from the event lists in program order (instructions issue in order, and each unit serves
    them in order)."""
    L, P = cfg.lanes, cfg.vxm_passes
    take = {name: iter(cycles) for name, cycles in events.items() if name != "issue"}
    issues = list(events["issue"])
    if len(issues) != len(program):
        raise TraceError(f"{len(issues)} issue events for a program of {len(program)} "
                         f"instructions")
    out = []

    def span(track, name, cycles, tail, args, step=1):
        """One slice per burst of vectors ``step`` cycles apart: a stream that runs as the
        contract says is one slice, and any vector off its cycle splits it where it is."""
        start = 0
        for k in range(1, len(cycles) + 1):
            if k == len(cycles) or cycles[k] - cycles[k - 1] != step:
                burst = cycles[start:k]
                out.append((track, name, burst[0], burst[-1] + tail - burst[0],
                            {**args, "vectors": len(burst)}))
                start = k

    for pc, (insn, at) in enumerate(zip(program, issues)):
        label = str(insn)
        args = {"pc": pc, "issue": at}
        out.append(("sequencer", label, at, 1, args))
        if insn.op == Op.LW:
            rows = [next(take["weight_rows"]) for _ in range(L)]
            reads = [c - cfg.sram_read_latency for c in rows]     # the rows' read cycles
            span(f"bank {insn.bank} read", f"LW pc{pc}", reads, 1, args)
            span("LW (weight port)", f"LW pc{pc} -> w{insn.wbuf}", rows, 1, args)
        elif insn.op == Op.MM:
            act = [next(take["activations"]) for _ in range(insn.count)]
            res = [next(take["results"]) for _ in range(insn.count)]
            span(f"bank {insn.bank} read", f"MM pc{pc}",
                 [c - cfg.sram_read_latency for c in act], 1, args)
            span("MXM", f"MM pc{pc}", act, 1, args)
            span("accumulators", f"MM pc{pc} -> acc{insn.acc_base}", res, 1, args)
        elif insn.op == Op.VX:
            reads = [next(take["vx_reads"]) for _ in range(insn.count)]
            writes = [next(take["link_sends" if insn.link else "sram_writes"])
                      for _ in range(insn.count)]
            span("VXM", f"VX pc{pc}", reads, P, args, step=P)
            if insn.link:
                span("link east", f"VX pc{pc}", writes, 1, args, step=P)
            banks = [] if insn.link else \
                [insn.bank] if insn.quant else [(insn.bank + p) % cfg.banks for p in range(4)]
            for b in banks:
                span(f"bank {b} write", f"VX pc{pc}", writes, 1, args, step=P)
        elif insn.op == Op.RX:
            got = [next(take["rx_writes"]) for _ in range(insn.count)]
            span(f"bank {insn.bank} write", f"RX pc{pc}", got, 1, args, step=P)
    left = {name: sum(1 for _ in it) for name, it in take.items()}
    if any(left.values()):
        extra = next(name for name, n in left.items() if n)
        raise TraceError(f"{left[extra]} '{extra}' events more than the program's instructions "
                         f"account for")
    return out


_TRACK_ORDER = ["network", "host", "sequencer", "LW (weight port)", "MXM", "accumulators",
                "VXM", "link east"]


def _track_key(name):
    if name in _TRACK_ORDER:
        return (_TRACK_ORDER.index(name), 0, name)
    if name.startswith("bank "):
        return (len(_TRACK_ORDER), int(name.split()[1]), name)
    return (len(_TRACK_ORDER) + 1, 0, name)


def build_trace(cfg, runs, *, backend, config_name, layers=()):
    """The Chrome trace of a sequence of runs on one tile. ``runs``: dicts with ``program``,
    ``events``, ``counters`` and ``host`` = (cycles to load and start, cycles to read back),
    in the order they ran; ``layers``: (name, first run, number of runs) for ``lpu run``."""
    slices, counters = [], []
    t = 0
    spans = []
    for k, r in enumerate(runs):
        load, back = r["host"]
        slices.append(("host", f"load run {k}", t, load, {"run": k, "accesses": load}))
        start = t + load
        cycles = _tile_slices(cfg, r, start, {"run": k}, slices, counters)
        slices.append(("host", f"read back run {k}", start + cycles, back,
                       {"run": k, "accesses": back}))
        spans.append((t, start + cycles + back))
        t = start + cycles + back
    for name, first, n in layers:
        if n:
            a, b = spans[first][0], spans[first + n - 1][1]
            slices.append(("network", name, a, b - a, {"runs": n}))
    return _trace({1: ("tile 0", slices, counters)}, backend, config_name, t)


def build_chip_trace(cfg, chunks, *, backend, config_name):
    """The Chrome trace of a chip's runs: ``chunks``: one per chip run, in order, each a list
    (per tile) of dicts as in :func:`build_trace`'s ``runs``. For each, the host loads the
    tiles one after another (the ``chip`` process's ``host`` track), every tile starts on the
    same cycle (a process per tile; the sender's ``link east`` track, the receiver's RX
    writes on its bank's track), then the host reads back the last tile."""
    host = []
    procs = {k + 2: (f"tile {k}", [], []) for k in range(cfg.tiles)}
    t = 0
    for c, tiles in enumerate(chunks):
        for k, r in enumerate(tiles):
            load = r["host"][0]
            host.append(("host", f"load tile {k}", t, load, {"chunk": c, "tile": k,
                                                            "accesses": load}))
            t += load
        cycles = max(_tile_slices(cfg, r, t, {"chunk": c, "tile": k}, procs[k + 2][1],
                                  procs[k + 2][2]) for k, r in enumerate(tiles))
        back = tiles[-1]["host"][1]
        host.append(("host", f"read back tile {len(tiles) - 1}", t + cycles, back,
                     {"chunk": c, "tile": len(tiles) - 1, "accesses": back}))
        t += cycles + back
    procs[1] = ("chip", host, [])
    return _trace(procs, backend, config_name, t)


def _tile_slices(cfg, r, start, tag, slices, counters):
    """One run of one tile from cycle ``start``: its slices and utilisation counter; returns
    its cycles."""
    for track, name, at, dur, args in run_timeline(cfg, r["program"], r["events"]):
        slices.append((track, name, start + at, dur, {**args, **tag, "run_cycle": at}))
    cycles = r["counters"]["cycles"]
    util = 100.0 * r["counters"]["mxm_busy"] / cycles if cycles else 0.0
    counters.append((start, {"MXM utilisation %": round(util, 2)}))
    counters.append((start + cycles, {"MXM utilisation %": 0}))
    return cycles


def _trace(procs, backend, config_name, cycles):
    """``procs``: pid -> (process name, slices, counters) as Chrome trace events."""
    ev = []
    for pid, (pname, slices, counters) in sorted(procs.items()):
        tracks = sorted({s[0] for s in slices}, key=_track_key)
        tid = {name: i + 1 for i, name in enumerate(tracks)}
        ev.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": pname}})
        ev.append({"ph": "M", "name": "process_sort_index", "pid": pid,
                   "args": {"sort_index": pid}})
        ev += [{"ph": "M", "name": "thread_name", "pid": pid, "tid": tid[n], "args": {"name": n}}
               for n in tracks]
        ev += [{"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid[n],
                "args": {"sort_index": tid[n]}} for n in tracks]
        for track, name, at, dur, args in sorted(slices, key=lambda s: (s[2], _track_key(s[0]))):
            ev.append({"ph": "X", "name": name, "cat": track.split()[0], "pid": pid,
                       "tid": tid[track], "ts": at, "dur": dur, "args": args})
        for at, values in counters:
            ev.append({"ph": "C", "name": "MXM utilisation", "pid": pid, "ts": at,
                       "args": values})
    return {"traceEvents": ev, "displayTimeUnit": "ns",
            "otherData": {"backend": backend, "config": config_name, "time_unit": "tile cycle",
                          "events": "observed (tile probe port)" if backend == "sim"
                          else "predicted (model.tile.schedule)", "cycles": cycles}}


def write_trace(path, trace):
    """Write atomically: a failure never leaves a partial trace."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(trace, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def load_trace(path):
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"no trace at '{path}'")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TraceError(f"'{path}' is not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise TraceError(f"'{path}' is not a Chrome trace (no \"traceEvents\" list)")
    return data


def _canonical(trace):
    """Per track (process/thread names): the events, sorted by cycle."""
    names, procs = {}, {}
    for e in trace["traceEvents"]:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[(e.get("pid"), e.get("tid"))] = e["args"]["name"]
        if e.get("ph") == "M" and e.get("name") == "process_name":
            procs[e.get("pid")] = e["args"]["name"]
    tracks = {}
    for e in trace["traceEvents"]:
        ph = e.get("ph")
        if ph == "M":
            continue
        proc = procs.get(e.get("pid"), str(e.get("pid")))
        if ph == "C":
            track = f"{proc}/counter {e.get('name')}"
        else:
            track = f"{proc}/{names.get((e.get('pid'), e.get('tid')), e.get('tid'))}"
        item = (e.get("ts", 0), ph, e.get("name"), e.get("dur"),
                json.dumps(e.get("args", {}), sort_keys=True))
        tracks.setdefault(track, []).append(item)
    return {k: sorted(v) for k, v in tracks.items()}


def diff_traces(a, b):
    """None when the two traces have the same events on the same tracks at the same cycles;
    else the first difference in time: dict(cycle, track, a, b) (``a``/``b``: the event each
    trace has there, or None)."""
    ca, cb = _canonical(a), _canonical(b)
    first = None
    for track in sorted(set(ca) | set(cb)):
        ea, eb = ca.get(track, []), cb.get(track, [])
        for i in range(max(len(ea), len(eb))):
            x = ea[i] if i < len(ea) else None
            y = eb[i] if i < len(eb) else None
            if x != y:
                if x and y and x[:3] == y[:3] and x[3] != y[3]:    # one lasts longer
                    cycle = x[0] + min(x[3], y[3])
                else:
                    cycle = min(e[0] for e in (x, y) if e is not None)
                if first is None or cycle < first["cycle"]:
                    first = {"cycle": cycle, "track": track, "a": _show(x), "b": _show(y)}
                break
    return first


def _show(item):
    if item is None:
        return None
    ts, ph, name, dur, args = item
    args = json.loads(args)
    unit = "run" if "run" in args else "tile" if "tile" in args else None
    where = f" ({unit} {args[unit]}, its cycle {args['run_cycle']})" if unit and \
        "run_cycle" in args else ""
    return f"'{name}' at cycle {ts}{where}" + (f" for {dur} cycles" if dur is not None else "")


def trace_diff_command(path_a, path_b):
    """``lpu trace-diff``: exit 0 when the traces agree, 1 when they differ."""
    a, b = load_trace(path_a), load_trace(path_b)
    d = diff_traces(a, b)
    if d is None:
        n = sum(e.get("ph") != "M" for e in a["traceEvents"])
        print(f"traces agree: {n} events on {len(_canonical(a))} tracks")
        return 0
    print(f"traces differ: first at cycle {d['cycle']} on track '{d['track']}': "
          f"{path_a} has {d['a'] or 'nothing'}, {path_b} has {d['b'] or 'nothing'}")
    return 1
