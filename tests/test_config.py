import pytest

from lpu.contract.config import SERIAL_LANE_CYCLES, ConfigError, LpuConfig, PRESETS, preset


def test_presets():
    assert {"tiny", "default", "large"} <= set(PRESETS)
    assert preset("large").lanes >= 16
    for _name, cfg in PRESETS.items():
        assert cfg.word_bits == 8 * cfg.lanes
        # entry, skew, ripple, de-skew, each PE's operands and product
        # with read_registers, a fabric register before and after each PE's DSP block
        assert cfg.mxm_latency == 2 * cfg.lanes + 2 + 2 * cfg.read_registers
        assert cfg.host_data_bits >= 96          # one instruction fits the host bus
        if cfg.vxm_serial:      # one lane at a time, done the cycle after the last pass
            assert cfg.vxm_passes == cfg.lanes * SERIAL_LANE_CYCLES
            assert cfg.vxm_latency == cfg.vxm_passes
        else:
            assert cfg.vxm_group * cfg.vxm_passes == cfg.lanes
            # entry, fourteen stages (and registers of the DSP products and of the 9-bit
            # saturated sum), the lanes
            assert cfg.vxm_latency == 15 + 2 * cfg.read_registers + cfg.vxm_passes
        assert 0 <= cfg.lut_products <= cfg.lanes ** 2
        # a block RAM's read, then read_registers registers; the read-modify-write alike
        R = 1 + cfg.read_registers
        # the instruction register; with read_registers the queue's read after the start
        assert cfg.fetch_latency == 1 + 2 * cfg.read_registers
        # the VXM's result registered in front of the banks' write ports
        assert cfg.vx_write_latency == cfg.read_registers
        assert (cfg.sram_read_latency, cfg.acc_update_delay) == (R, R)
        # a VX's accumulator and parameter read addresses registered by the memories
        assert cfg.acc_address_latency == cfg.read_registers
        assert cfg.acc_read_latency == cfg.acc_address_latency + R
        # an update is written acc_update_delay after it leaves the array, and a read
        # reaches the (read-first) memory acc_address_latency after its address leaves
        assert cfg.acc_visible_delay == cfg.acc_update_delay + 1 - cfg.acc_address_latency
    # both kinds are built and simulated: the iCEBreaker's without, the others with
    assert {cfg.read_registers for cfg in PRESETS.values()} == {0, 1}
    # and both VXMs: the iCEBreaker's bit-serial
    assert {cfg.vxm_serial for cfg in PRESETS.values()} == {False, True}


def test_preset_wrong():
    with pytest.raises(ConfigError, match=r"^unknown preset 'huge': choose one of tiny, default, "
                                          r"large, icebreaker, ulx3s \(or NAME\*TILES for a chip\)$"):
        preset("huge")


def test_boards_are_built_from_their_presets():
    """What goes into a bitstream is a preset, so make sim lints and simulates it."""
    from lpu.contract.config import BOARD_PRESETS
    from lpu.tools.fpga import BOARDS
    assert set(BOARDS) == set(BOARD_PRESETS)
    for board, b in BOARDS.items():
        assert b.config is PRESETS[board]


@pytest.mark.parametrize("field,value,message", [
    ("lanes", 3, r"config field 'lanes' .* = 3 is out of range: must be a power of two in \[4, 64\]"),
    ("lanes", 128, r"'lanes' .* = 128 is out of range"),
    ("banks", 2, r"config field 'banks' .* = 2 is out of range: must be in \[4, 16\]"),
    ("depth", 1000, r"config field 'depth' .* = 1000 is out of range: must be a power of two"),
    ("acc_depth", 0, r"'acc_depth' .* = 0 is out of range"),
    ("imem_depth", 2, r"'imem_depth' .* = 2 is out of range"),
    ("param_depth", 8192, r"'param_depth' .* = 8192 is out of range"),
    ("vxm_passes", 3, r"'vxm_passes' .* = 3 is out of range: must be a power of two in \[1, 8192\]"),
    ("vxm_passes", 16, r"'vxm_passes' .* = 16 is out of range: must be a power of two in "
                       r"\[1, lanes=8\], or lanes\*128=1024$"),
    ("vxm_passes", 2048, r"'vxm_passes' .* = 2048 is out of range: .* or lanes\*128=1024$"),
    ("lut_products", 65, r"'lut_products' .* = 65 is out of range: must be in \[0, lanes\*\*2=64\]"),
    ("lut_products", -1, r"'lut_products' .* = -1 is out of range: must be in \[0, 4096\]"),
    ("read_registers", 2, r"'read_registers' .* = 2 is out of range: must be in \[0, 1\]"),
])
def test_config_wrong(field, value, message):
    with pytest.raises(ConfigError, match=message):
        LpuConfig(**{field: value})


def test_config_wrong_type():
    with pytest.raises(ConfigError, match=r"config field 'lanes' .* must be an integer, got '8'"):
        LpuConfig(lanes="8")
    with pytest.raises(ConfigError, match=r"'banks' .* must be an integer, got True"):
        LpuConfig(banks=True)


def test_config_error_is_one_line():
    with pytest.raises(ConfigError) as e:
        LpuConfig(depth=17)
    assert "\n" not in str(e.value)
