import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The tests that run longest in `make test`: seconds each, measured on a 2-core machine
# (`make test PYTEST_ADDOPTS=--durations=0`; a node id, or the part of one before its
# parameters, names each). `make test` starts them first, so that the short tests fill the
# end of the run on both cores instead of one core finishing a long test alone.
# `tests/test_hygiene.py` checks that every name here still names a collected test.
LONG = {
    "tests/test_mutate.py::test_mutants_on_a_dask_cluster": 188,
    "tests/test_netlist.py::test_ulx3s_mxm_netlist_registered_dsps_and_a_miswired_one": 166,
    "tests/test_netlist.py::test_icebreaker_tile_netlist": 156,
    "tests/test_sim.py::test_testbench[mxm-large]": 125,
    "tests/test_hil.py::test_fpga_backend_through_virtual_board[tiny]": 102,
    "tests/test_formal.py::test_task_proves[sequencer_done]": 102,
    "tests/test_cluster.py::test_killed_worker_loses_no_job": 92,
    "tests/test_netlist.py::test_miswired_dsp_fails_the_mxm_netlist": 92,
    "tests/test_sim.py::test_testbench[tile-ulx3s]": 89,
    "tests/test_netlist.py::test_ulx3s_sram_netlist_and_a_miswired_block_ram": 87,
    "tests/test_formal.py::test_task_proves[bridge]": 86,
    "tests/test_formal.py::test_task_proves[sequencer_issue]": 83,
    "tests/test_formal.py::test_task_proves[bridge_resync]": 82,
    "tests/test_cli.py::test_gemm_chain_on_a_chip[2-sim]": 78,
    "tests/test_sim.py::test_testbench[bridge-ulx3s]": 72,
    "tests/test_model_chip.py::test_split_layer_on_a_chip_equals_litert": 72,
    "tests/test_sim.py::test_chip[tiny*4-1]": 69,
    "tests/test_formal.py::test_accumulator_proves_without_read_registers": 67,
    "tests/test_lint.py::test_lint_clean[ulx3s]": 66,
    "tests/test_sim.py::test_testbench[tile-icebreaker]": 64,
    "tests/test_model_chip.py::test_lpu_run_on_a_chip_equals_litert[2]": 61,
    "tests/test_cluster.py::test_cluster_run_is_the_local_run": 61,
    "tests/test_sim.py::test_icarus_cross_check[tile-tiny]": 58,
    "tests/test_fpga.py::test_ulx3s_synthesis": 54,
    "tests/test_sim.py::test_testbench[vxm-ulx3s]": 52,
    "tests/test_fpga.py::test_icebreaker_packs_into_the_up5k": 52,
    "tests/test_sim.py::test_testbench[bridge-icebreaker]": 45,
    "tests/test_formal.py::test_task_proves[accumulator]": 44,
    "tests/test_sim.py::test_tile_with_more_banks_than_int32_planes": 40,
    "tests/test_regression.py::test_failures_are_reported": 40,   # two of its four
    "tests/test_sim.py::test_gemm_backends_agree[icebreaker]": 39,
    "tests/test_source_coverage.py::test_vxm_testbench_coverage": 38,
    "tests/test_sim.py::test_gemm_backends_agree[tiny]": 38,
    "tests/test_sim.py::test_gemm_backends_agree[ulx3s]": 37,
    "tests/test_mutate.py::test_unit_mutation_translation": 36,
    "tests/test_bench.py::test_native_harness_matches_the_model": 35,
    "tests/test_model_chip.py::test_lpu_run_on_a_chip_equals_litert[3]": 33,
    "tests/test_sim.py::test_testbench[mxm-ulx3s]": 30,
    "tests/test_tflite.py::test_model_backend_every_layer_equals_litert[anomaly_ae-icebreaker]":
        27,
    "tests/test_formal.py::test_false_property_fails_with_a_replayable_counterexample": 26,
    "tests/test_sim.py::test_testbench[vxm-icebreaker]": 26,
    "tests/test_tflite.py::test_the_icebreaker_preset_runs_a_network": 25,
    "tests/test_tflite.py::test_model_backend_every_layer_equals_litert[anomaly_ae-tiny]": 25,
}


def expected_seconds(nodeid):
    """How long ``nodeid`` ran, from ``LONG`` (0 for a test not in it)."""
    return LONG.get(nodeid, LONG.get(nodeid.split("[")[0], 0))


def pytest_collection_modifyitems(config, items):
    """Longest first (``LONG``), dealt round-robin to the xdist workers: each worker's share
    is one contiguous slice of the order (``--dist worksteal``, `make test`), so each gets
    every n-th of the longest, and a worker that runs out takes the tail, the short tests,
    of another's. (The hands in reverse: the shorter ones first, as worksteal's first
    slices are.) Without xdist, the longest first as well."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    ranked = sorted(items, key=lambda item: -expected_seconds(item.nodeid))   # stable
    items[:] = [item for w in reversed(range(workers)) for item in ranked[w::workers]]
