"""Generated Verilog of every design and preset is clean under verilator --lint-only -Wall
with only rtl/lint.vlt's waivers."""

import pytest

from lpu.contract.config import PRESETS, preset
from lpu.tools.lint import lint


# "large" (16 lanes) is the slowest to generate, its chip most of all, and "default" differs
# from "ulx3s" only in its parameter memory's depth: both in `make test-heavy`
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy)
                                  if n in ("large", "default") else n for n in PRESETS])
def test_lint_clean(name):
    report = []
    assert lint(name, preset(name), out=report.append) == 0, "\n".join(report)
