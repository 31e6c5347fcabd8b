"""`make lint`: Verilator's -Wall on the generated Verilog, with only the waivers in
``rtl/lint.vlt`` (patterns Amaranth's generator emits on purpose)."""

import subprocess

from .simulation import DESIGNS, VLT, write_verilog
from .toolchain import verilator_env

__all__ = ["lint"]


def lint(name, config, out=print):
    """Lint every design at ``config``; returns the number of designs with warnings."""
    env = verilator_env()
    failed = 0
    for design in DESIGNS:
        vfile = write_verilog(design, config)
        r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "top",
                            str(VLT), str(vfile)], env=env, capture_output=True, text=True)
        ok = r.returncode == 0 and "%Warning" not in r.stderr
        out(f"{'clean' if ok else 'WARNINGS'}  {name:8s} {design:5s} {vfile}")
        if not ok:
            failed += 1
            out(r.stderr.rstrip())
    return failed
