"""`make bench`'s native C++ harness (the ceiling the framework is measured against) builds
against the tile's Verilog and returns the golden model's results and cycle count: it broke
unnoticed once (Verilator escapes ``host__re`` as ``host___05Fre``) because only `make bench`
built it."""

from lpu.contract.config import preset
from lpu.host.runtime import sim_job
from lpu.tools.bench import _bench_program, _expected, _native_build, _native_run, _verify


def test_native_harness_matches_the_model():
    cfg = preset("tiny")
    plan = _bench_program(cfg)
    job = sim_job(cfg, plan.runs)
    expected, counters = _expected(cfg, plan)
    cycles, seconds, read = _native_run(_native_build("tiny", cfg), cfg, job, 3)
    _verify("native", read, None, expected, counters)       # raises on any differing byte
    assert cycles == 3 * (counters["cycles"] + 1) and seconds > 0
