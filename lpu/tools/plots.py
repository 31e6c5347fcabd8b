"""Plots (matplotlib, PNG) of what the tools measured, written next to their JSON results.

Each function takes the dict a tool wrote (``results.json``, ``report.json``,
``coverage.json``) and draws it; nothing here measures anything. ``make bench``, ``make
mutate``, ``make coverage`` and ``make sim`` draw their own; ``make plots`` (``lpu plots``)
redraws every plot whose results exist into ``docs/plots/``, which is where the README's
figures come from (generated, not committed).
"""

import json
from pathlib import Path

from .simulation import BUILD

__all__ = ["plot_bench", "plot_mutation", "plot_functional_coverage", "plot_source_coverage",
           "plot_all", "PLOTS"]

# where `make plots` draws: beside the README, which shows them (generated, so not committed:
# .gitignore; the README says which command makes them)
PLOTS = BUILD.parent / "docs" / "plots"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    _pyplot().close(fig)
    return path


def plot_bench(results, out_dir):
    """``make bench``: simulation speed per preset (framework, native, naive), utilisation per
    GEMM shape, per-layer tile cycles of the real-network fixtures. Returns the paths."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    paths = []
    sims = results.get("sim_throughput") or {}
    if sims:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        kinds = [("native_cycles_per_s", "native Verilator (C++ harness)"),
                 ("framework_cycles_per_s", "this framework (cocotb)"),
                 ("naive_cycles_per_s", "naive cocotb (Python per cycle)")]
        names = list(sims)
        width = 0.8 / len(kinds)
        for k, (key, label) in enumerate(kinds):
            ax.bar([i + k * width for i in range(len(names))], [sims[n][key] for n in names],
                   width, label=label)
        ax.set_xticks([i + width for i in range(len(names))], names)
        ax.set_yscale("log")
        ax.set_ylabel("simulated cycles / s")
        ax.set_title("Simulation speed (same GEMM program, results verified)")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "sim_speed.png"))
    shapes = results.get("shapes") or []
    if shapes:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        labels = [r["shape"] for r in shapes]
        ax.barh(labels, [100 * r["utilisation"] for r in shapes], label="MAC utilisation")
        ax.barh(labels, [100 * r["mxm_busy"] for r in shapes], fill=False, edgecolor="black",
                label="MXM busy")
        ax.set_xlabel("% of the run's cycles (RTL cycles = model cycles)")
        ax.set_xlim(0, 100)
        ax.invert_yaxis()
        ax.set_title("Utilisation per GEMM shape (default preset)")
        ax.legend(fontsize=8, loc="lower right")
        paths.append(_save(fig, out_dir / "utilisation.png"))
    nets = [r for r in results.get("networks") or [] if r.get("layers")]
    if nets:
        fig, axes = plt.subplots(len(nets), 1, figsize=(7, 1.4 + 1.1 * len(nets)), squeeze=False)
        for ax, r in zip(axes[:, 0], nets):
            layers = r["layers"]
            ax.bar([str(x["layer"]) for x in layers], [x["cycles"] for x in layers],
                   label="tile cycles")
            ax.bar([str(x["layer"]) for x in layers], [x["host_port_cycles"] for x in layers],
                   bottom=[x["cycles"] for x in layers], label="host-port cycles", alpha=0.6)
            ax.set_ylabel(r["model"], fontsize=8)
        axes[0, 0].set_title("Per-layer cycles of the network fixtures (default preset, batch "
                             "as committed)")
        axes[0, 0].legend(fontsize=7)
        axes[-1, 0].set_xlabel("layer (tile layers)")
        paths.append(_save(fig, out_dir / "network_layers.png"))
    pipe = results.get("pipeline")
    if pipe:
        paths.append(plot_pipeline(pipe, out_dir / "pipeline.png"))
    scal = results.get("scaling") or {}
    if scal:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for model, rows in scal.items():
            ns = sorted(int(n) for n, r in rows.items() if "efficiency" in r)   # (measured)
            ax.plot(ns, [100 * rows[str(n)]["efficiency"] for n in ns], marker="o", label=model)
        ax.set_xlabel("tiles")
        ax.set_ylabel("scaling efficiency, %")
        ax.set_ylim(0, 105)
        ax.set_title("Throughput at N tiles / (N x one tile), model = RTL cycles")
        ax.legend(fontsize=7)
        paths.append(_save(fig, out_dir / "scaling.png"))
    return paths


def pipeline_bars(cfg, chain, chip):
    """From the model's schedule of a pipelined chain: per tile, per sub-chunk, the cycles
    from its first activation into the array to its last vector out (sent east, or written
    or written to SRAM): ``{"tiles": [[(sub, start, end), ...], ...], "interval": II,
    "labels": [its layers, per tile]}``."""
    import numpy as np
    bars = []
    for t in chip.timings:
        outs = t.link_sends + t.sram_writes
        acts = np.array_split(np.array(sorted(t.activations)), chain.subs)
        outs = np.array_split(np.array(sorted(outs)), chain.subs)
        bars.append([(s, int(a.min()), int(o.max()) + 1) for s, (a, o) in enumerate(zip(acts, outs))
                     if len(a) and len(o)])
    return {"tiles": bars, "interval": chain.interval, "name": chain.name,
            "labels": chain.describe(cfg).split(" | ")}


def plot_pipeline(pipe, path):
    """Which layer runs on which tile, and when: a bar per tile and batch sub-chunk."""
    plt = _pyplot()
    tiles = pipe["tiles"]
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.55 * len(tiles)))
    cmap = plt.get_cmap("tab10")
    for k, bars in enumerate(tiles):
        for sub, start, end in bars:
            ax.barh(k, end - start, left=start, color=cmap(sub % 10), edgecolor="black",
                    linewidth=0.4)
            ax.text((start + end) / 2, k, str(sub), ha="center", va="center", fontsize=6)
    labels = pipe.get("labels") or [str(k) for k in range(len(tiles))]
    ax.set_yticks(range(len(tiles)), [f"tile {k}: layer {x}" for k, x in enumerate(labels)])
    ax.invert_yaxis()
    ax.set_xlabel("cycle (the model's schedule; the RTL's is the same)")
    ax.set_title(f"{pipe.get('name', 'pipeline')}: batch sub-chunks (numbered), one every "
                 f"{pipe['interval']} cycles", fontsize=9)
    return _save(fig, path)


def plot_mutation(report, path):
    """``make mutate``: the outcome of every mutant, and the survivors per source file."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    keys = ["killed", "survived", "equivalent", "stillborn"]
    a.bar(keys, [report[k] for k in keys], color=["tab:green", "tab:red", "tab:gray", "tab:olive"])
    score = "n/a" if report["score"] is None else f"{100 * report['score']:.1f} %"
    a.set_title(f"{report['mutants']} mutants, score {score}")
    files = {}
    for s in report["survivors"]:
        files[s.get("file") or "?"] = files.get(s.get("file") or "?", 0) + 1
    if files:
        b.barh(list(files), list(files.values()), color="tab:red")
        b.set_xlabel("survivors")
    else:
        b.text(0.5, 0.5, "no survivors", ha="center", va="center")
        b.set_axis_off()
    b.set_title("survivors per file")
    return _save(fig, path)


def _hit_bars(items, of, hit, xlabel, title, path, log=False):
    """One bar per item: its total in grey, what was hit over it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.3 * len(items)))
    names = list(items)
    ax.barh(names, [v[of] for v in items.values()], color="lightgray", label=of)
    ax.barh(names, [v[hit] for v in items.values()], color="tab:green", label=hit)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_functional_coverage(summary, path):
    """``make sim``: each cover point's bins hit, of its size."""
    return _hit_bars(summary["points"], "size", "hit", "bins (declared, hit)",
                     f"Functional coverage: {summary['hit']}/{summary['declared']} bins "
                     f"({summary['percent']} %)", path, log=True)


def plot_source_coverage(summary, path):
    """``make coverage``: per ``rtl/`` file, the source lines fully covered."""
    return _hit_bars(summary["files"], "lines", "lines_covered",
                     "Amaranth source lines with coverage points (all, fully covered)",
                     f"Source-line coverage: {summary['lines_covered']}/{summary['lines']} "
                     f"({summary['percent']} %)", path)


def plot_all(out_dir=None, log=print):
    """Redraw every plot whose results exist (``make plots``); returns the paths."""
    out_dir = Path(out_dir or PLOTS)
    sources = [
        (BUILD / "bench" / "results.json", lambda r: plot_bench(r, out_dir)),
        (BUILD / "mutate" / "report.json", lambda r: [plot_mutation(r, out_dir / "mutation.png")]),
        (BUILD / "sim" / "coverage.json",
         lambda r: [plot_functional_coverage(r, out_dir / "functional_coverage.png")]),
        (BUILD / "coverage" / "report.json",
         lambda r: [plot_source_coverage(r, out_dir / "source_coverage.png")]),
    ]
    paths = []
    for src, draw in sources:
        if src.exists():
            paths += draw(json.loads(src.read_text()))
        else:
            log(f"plots: no {src.relative_to(BUILD.parent)} yet (run the target that makes it)")
    for p in paths:
        log(f"plots: {p}")
    return paths
