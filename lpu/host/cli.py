"""The ``lpu`` command. User errors print one line ``error: ...`` and exit with code 2."""

import argparse
import signal
import sys
from pathlib import Path

from ..contract.config import ConfigError, PRESETS, preset
from .errors import UserError

__all__ = ["main", "UserError"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def cmd_configs(args):
    for name, cfg in PRESETS.items():
        print(f"{name:8s} {cfg.describe()}  (MXM {cfg.lanes}x{cfg.lanes}, "
              f"{cfg.banks * cfg.depth * cfg.lanes // 1024} KiB SRAM)")
    return 0


def _presets(arg):
    names = list(PRESETS) if arg in (None, "all") else [a for a in arg.split(",") if a]
    return [(n, preset(n)) for n in names]


def cmd_verilog(args):
    from ..tools.simulation import DESIGNS, write_verilog
    for _name, cfg in _presets(args.config):
        for design in DESIGNS:
            print(write_verilog(design, cfg))
    return 0


def cmd_lint(args):
    from ..tools.lint import lint
    failed = 0
    for name, cfg in _presets(args.config):
        failed += lint(name, cfg)
    return 1 if failed else 0


def cmd_sim(args):
    from ..tools.regression import plan, run_regression
    if args.netlist:
        from ..tools.netlist import FAMILIES, NETLIST_TESTBENCHES
        if args.netlist not in FAMILIES:
            raise UserError(f"unknown board '{args.netlist}' for NETLIST (boards: "
                            f"{', '.join(FAMILIES)})")
        if args.config and args.config != args.netlist:
            raise UserError(f"NETLIST={args.netlist} simulates that board's preset; drop "
                            f"CONFIG={args.config}")
        args.config = args.netlist
    try:
        jobs = plan(args.config, args.test, args.seed, args.seeds, args.shard, args.sim)
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.netlist:
        jobs = [j for j in jobs if j.testbench in NETLIST_TESTBENCHES[:2] or
                (args.test and j.testbench in NETLIST_TESTBENCHES)]
        if not jobs:
            raise UserError(f"TEST={args.test}: a netlist runs the "
                            f"{', '.join(NETLIST_TESTBENCHES)} testbenches")
    if args.sim == "icarus":
        import shutil
        if shutil.which("iverilog") is None:
            raise UserError("'iverilog' not found: apt-get install -y iverilog")
    if not jobs:
        print("lpu sim: this shard has no jobs")
        return 0
    from ..tools.executor import ClusterError
    from ..tools.netlist import NetlistError
    try:
        failed = run_regression(jobs, sim=args.sim, waves=args.waves, jobs_parallel=args.jobs,
                                cluster=args.cluster, cluster_builds=args.cluster_builds,
                                netlist=args.netlist)
    except ClusterError as e:
        raise UserError(str(e)) from None
    except NetlistError as e:       # Yosys could not make the netlist: one line, the log
        raise UserError(str(e)) from None
    return 1 if failed else 0


def cmd_merge_junit(args):
    from ..tools.regression import merge_junit
    n = merge_junit(args.inputs, args.output)
    print(f"merged {len(args.inputs)} files, {n} test cases -> {args.output}")
    return 0


def cmd_gemm(args):
    from .runtime import gemm_command
    return gemm_command(args)


def cmd_run(args):
    from .runtime import run_command
    return run_command(args)


def cmd_trace_diff(args):
    from .trace import TraceError, trace_diff_command
    try:
        return trace_diff_command(args.a, args.b)
    except TraceError as e:
        raise UserError(str(e)) from None


def cmd_plots(args):
    from ..tools.plots import plot_all
    plot_all(args.out)
    return 0


def cmd_bench(args):
    from ..tools.bench import run_bench, scaling_on_rtl
    if args.rtl_scaling:
        scaling_on_rtl()
        return 0
    run_bench(presets=args.config.split(","), with_levers=not args.quick,
              with_regression=not args.quick)
    return 0


README_TABLE = ("<!-- fpga-table: lpu fpga-table --readme README.md -->", "<!-- /fpga-table -->")


def cmd_fpga_table(args):
    """Print the table of bitstream reports; with ``--readme``, write it between the file's
    two markers instead (the file is left as it was on any error)."""
    from ..tools.bench import fpga_figures, fpga_tables
    reports = fpga_figures()
    if not reports:
        raise UserError("no bitstream reports in build/fpga: run make bitstream BOARD=... first")
    table = "\n".join(fpga_tables(reports))
    if not args.readme:
        print(table)
        return 0
    path = Path(args.readme)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    begin, end = README_TABLE
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise UserError(f"{path} has no '{begin}' ... '{end}' pair to put the table between")
    head, rest = text.split(begin)
    path.write_text(f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}")
    print(f"wrote the table of {len(reports)} report(s) into {path}")
    return 0


def cmd_mutate(args):
    from ..tools.mutate import run_mutation
    if args.count < 1:
        raise UserError(f"--count must be >= 1, got {args.count}")
    preset(args.config)                 # an unknown preset: one line, exit 2
    from ..tools.executor import ClusterError
    try:
        report = run_mutation(args.config, count=args.count, seed=args.seed, jobs=args.jobs,
                              cluster=args.cluster)
    except ClusterError as e:
        raise UserError(str(e)) from None
    return 1 if report["survived"] else 0


def cmd_formal(args):
    from ..tools.formal import TASKS, replay, run_formal
    if args.replay:
        path = Path(args.replay)
        if not path.is_file():
            raise UserError(f"no counterexample trace at {path} (lpu formal writes "
                            f"build/formal/<preset>/<task>/check_trace.json)")
        first, result = replay(path)
        if first is None:
            print(f"replay of {path}: every assertion holds on every cycle ({result.message})")
            return 1
        print(f"replay of {path}: an assertion fails on cycle {first}, as the proof found "
              f"(log {result.log})")
        return 0
    preset(args.config)
    unknown = [t for t in args.task or [] if t not in TASKS]
    if unknown:
        raise UserError(f"unknown formal task '{unknown[0]}' (tasks: {', '.join(TASKS)})")
    report = run_formal(args.config, args.task, jobs=args.jobs)
    ok = sum(r["passed"] for r in report["tasks"])
    print(f"formal: {ok}/{len(report['tasks'])} tasks proved on '{args.config}': "
          f"build/formal/{args.config}/report.json")
    return 0 if report["passed"] else 1


def cmd_coverage(args):
    from ..tools.simulation import TESTBENCHES
    from ..tools.source_coverage import run_source_coverage
    presets = args.config.split(",")
    for name in presets:
        preset(name)                    # an unknown preset: one line, exit 2
    designs = args.test.split(",") if args.test else None
    unknown = [d for d in designs or [] if d not in TESTBENCHES]
    if unknown:
        raise UserError(f"unknown testbench '{unknown[0]}' (testbenches: {', '.join(TESTBENCHES)})")
    run_source_coverage(presets, designs, jobs=args.jobs)
    return 0


def cmd_bitstream(args):
    from ..tools.fpga import BUILD_MINUTES, BitstreamError, build_bitstream
    minutes = BUILD_MINUTES if args.minutes is None else args.minutes
    try:
        if args.mhz is not None and not args.mhz > 0:
            raise BitstreamError(f"--mhz must be > 0, got {args.mhz}")
        if args.pnr_opts and not args.pnr_opts.startswith("-"):
            raise BitstreamError(f"--pnr-opts must be nextpnr options, got '{args.pnr_opts}'")
        if not minutes > 0:
            raise BitstreamError(f"--minutes must be > 0, got {minutes:g}")
        if args.seed is not None and args.seed < 0:
            raise BitstreamError(f"--seed must be >= 0, got {args.seed}")
        if args.seed is not None and args.synth_only:
            raise BitstreamError("--seed is nextpnr's placer seed: --synth-only runs no nextpnr")
        if args.seed is not None and "--seed" in args.pnr_opts.split():
            raise BitstreamError("--seed is given twice: as --seed and in --pnr-opts")
        build_bitstream(args.board, synth_only=args.synth_only, mhz=args.mhz, config=args.config,
                        pnr_opts=args.pnr_opts, minutes=minutes, seed=args.seed)
    except BitstreamError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_serve_sim(args):
    from ..tools.serve import serve_sim
    return serve_sim(preset(args.config), args.seconds)


def build_parser():
    p = _Parser(prog="lpu", description="LPU tile co-simulation: model, sim and FPGA back ends")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    sub.add_parser("configs", help="list the configuration presets").set_defaults(fn=cmd_configs)

    s = sub.add_parser("verilog", help="write generated Verilog to build/verilog/<preset>/")
    s.add_argument("--config", default=None, help="preset, comma list, or 'all' (default)")
    s.set_defaults(fn=cmd_verilog)

    s = sub.add_parser("lint", help="verilator --lint-only -Wall on the generated Verilog")
    s.add_argument("--config", default=None)
    s.set_defaults(fn=cmd_lint)

    s = sub.add_parser("sim", help="the cocotb regression")
    s.add_argument("--config", default=None, help="preset or comma list (default: all)")
    s.add_argument("--test", default=None, help="testbench name or cocotb test name/regex")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--seeds", type=int, default=None)
    s.add_argument("--waves", action="store_true", help="write FST waveforms")
    s.add_argument("--sim", choices=["verilator", "icarus"], default="verilator")
    s.add_argument("--shard", default=None, help="i/n: run the i-th of n disjoint slices")
    s.add_argument("--jobs", type=int, default=None, help="parallel simulations (default: cores)")
    s.add_argument("--cluster", default=None, metavar="local:N|tcp://HOST:PORT",
                   help="run the jobs on a Dask cluster (a LocalCluster of N workers, or a scheduler)")
    s.add_argument("--netlist", default=None, metavar="BOARD",
                   help="simulate the board's post-synthesis netlist (gate level) instead of the RTL")
    s.add_argument("--cluster-builds", default="shared", choices=["shared", "worker"],
                   help="builds in the shared build/ (default) or in each worker's own cache")
    s.set_defaults(fn=cmd_sim)

    s = sub.add_parser("merge-junit", help="merge the results.xml of several shards")
    s.add_argument("inputs", nargs="+")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(fn=cmd_merge_junit)

    s = sub.add_parser("bench", help="measure simulation speed, utilisation, model speed")
    s.add_argument("--config", default="default,large")
    s.add_argument("--quick", action="store_true", help="skip the levers and regression timing")
    s.add_argument("--rtl-scaling", action="store_true",
                   help="only the autoencoder's 4-tile pipeline on the model and the RTL")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("fpga-table", help="the table of bitstream reports (build/fpga)")
    s.add_argument("--readme", default=None, metavar="FILE",
                   help="write it into FILE between its fpga-table markers")
    s.set_defaults(fn=cmd_fpga_table)

    s = sub.add_parser("plots", help="redraw every plot whose results exist (make plots)")
    s.add_argument("--out", default=None, help="folder (default: docs/plots)")
    s.set_defaults(fn=cmd_plots)

    s = sub.add_parser("mutate", help="mutation testing of the tile's RTL (make mutate)")
    s.add_argument("--config", default="tiny", help="preset the mutated tile is built for")
    s.add_argument("--count", type=int, default=40, help="mutants to sample")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--jobs", type=int, default=None, help="parallel mutants (default: cores)")
    s.add_argument("--cluster", default=None, metavar="local:N|tcp://HOST:PORT",
                   help="evaluate the mutants on a Dask cluster")
    s.set_defaults(fn=cmd_mutate)

    s = sub.add_parser("formal", help="prove the components' properties (make formal)")
    s.add_argument("--config", default="tiny", help="preset the components are built for")
    s.add_argument("--task", action="append", help="one task (repeatable; default: all)")
    s.add_argument("--jobs", type=int, default=None, help="parallel tasks (default: cores)")
    s.add_argument("--replay", metavar="TRACE.json",
                   help="replay a counterexample in a cocotb simulation; exit 0 if it fails there too")
    s.set_defaults(fn=cmd_formal)

    s = sub.add_parser("coverage", help="source-line coverage of rtl/ by the testbenches")
    s.add_argument("--config", default="tiny", help="preset or comma list")
    s.add_argument("--test", default=None, help="testbench or comma list (default: all)")
    s.add_argument("--jobs", type=int, default=None, help="parallel runs (default: cores)")
    s.set_defaults(fn=cmd_coverage)

    s = sub.add_parser("bitstream", help="build tile + bridge for an FPGA board")
    s.add_argument("--board", default="icebreaker", help="icebreaker | ulx3s")
    s.add_argument("--synth-only", action="store_true",
                   help="run Yosys only and check the cells against the FPGA's capacity")
    s.add_argument("--mhz", type=float, default=None,
                   help="the tile's clock from the PLL (ulx3s), instead of the board's default")
    s.add_argument("--config", default=None,
                   help="build this preset's tile (e.g. large) instead of the board's own")
    s.add_argument("--pnr-opts", default="",
                   help="more nextpnr options for an experiment (recorded in report.json)")
    s.add_argument("--minutes", type=float, default=None,
                   help="stop the build after this many minutes (default: "
                        "lpu.tools.fpga.BUILD_MINUTES, 60)")
    s.add_argument("--seed", type=int, default=None,
                   help="nextpnr's placer seed; builds in build/fpga/<board>[-<preset>]-seed<N>, "
                        "so that several seeds can build side by side")
    s.set_defaults(fn=cmd_bitstream)

    s = sub.add_parser("serve-sim", help="the simulated tile + bridge as a pseudo-terminal")
    s.add_argument("--config", default="default")
    s.add_argument("--seconds", type=float, default=3600, help="stop serving after this long")
    s.set_defaults(fn=cmd_serve_sim)

    s = sub.add_parser("gemm", help="run an int8 GEMM on a back end")
    s.add_argument("a", metavar="A.npy")
    s.add_argument("b", metavar="B.npy", nargs="+",
                   help="one B, or several: a chain of quantised GEMMs on a chip (--tiles)")
    s.add_argument("-o", "--output", required=True, metavar="OUT.npy")
    s.add_argument("--bias", default=None, metavar="BIAS.npy",
                   help="one per B, comma-separated")
    s.add_argument("--quant", default=None, metavar="QUANT.json",
                   help="one per B, comma-separated")
    s.add_argument("--tiles", type=int, default=1,
                   help="a chip of N tiles, the GEMMs' layers placed on them (default 1)")
    s.add_argument("--backend", default="model", help="model | sim | fpga")
    s.add_argument("--port", default=None, help="serial port of the board (--backend fpga)")
    s.add_argument("--config", default="default", help="preset (default: default)")
    s.add_argument("--trace", default=None, metavar="TRACE.json",
                   help="write the timeline (Chrome trace events: Perfetto, chrome://tracing)")
    s.set_defaults(fn=cmd_gemm)

    s = sub.add_parser("run", help="run a full-integer int8 .tflite network on a back end")
    s.add_argument("model", metavar="MODEL.tflite")
    s.add_argument("input", metavar="INPUT.npy")
    s.add_argument("-o", "--output", required=True, metavar="OUTPUT.npy")
    s.add_argument("--backend", default="model", help="model | sim | fpga")
    s.add_argument("--port", default=None, help="serial port of the board (--backend fpga)")
    s.add_argument("--config", default="default", help="preset (default: default)")
    s.add_argument("--rounding", default="single", choices=["single", "double"],
                   help="requantisation rounding: single (LiteRT today, default) or double "
                        "(gemmlowp)")
    s.add_argument("--clock-mhz", type=float, default=None,
                   help="clock for latency and inferences/s (default: a board preset's clock, "
                        "12 MHz for icebreaker; otherwise the ULX3S build's PLL clock, 65 MHz)")
    s.add_argument("--report", default=None, metavar="REPORT.json")
    s.add_argument("--tiles", type=int, default=1,
                   help="run on a chip of N tiles, one FULLY_CONNECTED layer per tile (default 1)")
    s.add_argument("--trace", default=None, metavar="TRACE.json",
                   help="write the timeline (Chrome trace events: Perfetto, chrome://tracing)")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("trace-diff", help="do two timelines (--trace) agree? where first not?")
    s.add_argument("a", metavar="A.json")
    s.add_argument("b", metavar="B.json")
    s.set_defaults(fn=cmd_trace_diff)
    return p


def main(argv=None):
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except (UserError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
