"""Generated Verilog of every design and preset is clean under verilator --lint-only -Wall
with only rtl/lint.vlt's waivers."""

import pytest

from lpu.contract.config import PRESETS, preset
from lpu.tools.lint import lint


@pytest.mark.parametrize("name", list(PRESETS))
def test_lint_clean(name):
    report = []
    assert lint(name, preset(name), out=report.append) == 0, "\n".join(report)
