"""Plots (``lpu.tools.plots``): each drawer turns a tool's JSON into a PNG, and ``make plots``
redraws what exists."""

from lpu.tools.plots import plot_bench, plot_functional_coverage, plot_mutation, plot_source_coverage

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path):
    data = path.read_bytes()
    return data[:8] == PNG and len(data) > 2000


def test_bench_plots(tmp_path):
    sim = {"native_cycles_per_s": 3e6, "framework_cycles_per_s": 2e6, "naive_cycles_per_s": 4e4}
    results = {"sim_throughput": {"default": sim, "large": sim},
               "shapes": [{"shape": "square", "utilisation": 0.5, "mxm_busy": 0.6},
                          {"shape": "tall", "utilisation": 0.9, "mxm_busy": 0.95}],
               "networks": [{"model": "digits_cnn", "layers": [
                   {"layer": 0, "op": "CONV_2D", "cycles": 900, "host_port_cycles": 300},
                   {"layer": 3, "op": "FULLY_CONNECTED", "cycles": 200, "host_port_cycles": 90}]}]}
    paths = plot_bench(results, tmp_path)
    assert sorted(p.name for p in paths) == ["network_layers.png", "sim_speed.png",
                                             "utilisation.png"]
    assert all(_png(p) for p in paths)
    assert plot_bench({}, tmp_path / "none") == []          # nothing measured, nothing drawn


def test_report_plots(tmp_path):
    mut = {"killed": 9, "survived": 1, "equivalent": 1, "stillborn": 0, "score": 0.9,
           "mutants": 11, "survivors": [{"file": "rtl/sequencer.py", "line": 3}]}
    fun = {"hit": 3, "declared": 4, "percent": 75.0,
           "points": {"a": {"size": 2, "hit": 2}, "b": {"size": 2, "hit": 1}}}
    src = {"lines": 5, "lines_covered": 4, "percent": 80.0,
           "files": {"rtl/x.py": {"lines": 5, "lines_covered": 4}}}
    for p in (plot_mutation(mut, tmp_path / "m.png"),
              plot_functional_coverage(fun, tmp_path / "f.png"),
              plot_source_coverage(src, tmp_path / "s.png")):
        assert _png(p)
    assert not list(tmp_path.glob("*.tmp.png"))


def test_pipeline_picture_from_the_model_schedule(tmp_path):
    """The chip's pipeline picture: per tile a bar per batch sub-chunk, from the model's
    schedule; each tile works on a sub-chunk after the tile west of it started it, and tile
    0 starts sub-chunk 1 before the last tile finishes sub-chunk 0 (the tiles overlap)."""
    import sys
    import numpy as np
    from lpu.contract.config import preset
    from lpu.host.chain import compile_pipeline, run_chain_on_model
    from lpu.tools.plots import pipeline_bars, plot_pipeline
    sys.path.insert(0, "tests")
    from test_model_chip import _chain
    cfg = preset("tiny*3")
    A, layers = _chain(np.random.default_rng(7), cfg, M=8)
    chain = compile_pipeline(cfg, A, layers, 2, 4)
    pipe = pipeline_bars(cfg, chain, run_chain_on_model(cfg, chain)[2])
    bars = pipe["tiles"]
    assert [len(b) for b in bars] == [4, 4, 4] and pipe["interval"] == chain.interval
    assert pipe["labels"] == ["0", "1", "2"]
    for k in range(1, 3):
        assert all(bars[k][s][1] > bars[k - 1][s][1] for s in range(4))
    assert bars[0][1][1] < bars[2][0][2]
    assert _png(plot_pipeline(pipe, tmp_path / "p.png"))
    scal = {"chain": {"1": {"efficiency": 1.0}, "2": {"efficiency": 0.6}}}
    assert [p.name for p in plot_bench({"scaling": scal}, tmp_path)] == ["scaling.png"]
