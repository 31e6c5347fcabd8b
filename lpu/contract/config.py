"""The one configuration object of the tile, read by ``rtl``, ``model`` and ``tb`` alike.

Every knob of the hardware lives here, and so does every latency of a unit: the RTL
components are built to these numbers, and the scheduling rules that follow from them
(``lpu.contract.timing``) are what the sequencer enforces and the golden model predicts with.
"""

from dataclasses import dataclass, fields, asdict

__all__ = ["ConfigError", "LpuConfig", "SERIAL_LANE_CYCLES", "PARAM_WORD_BITS", "PRESETS", "BOARD_PRESETS", "BOARD_CLOCK_MHZ", "preset"]


# cycles the bit-serial VXM spends on one lane (``LpuConfig.vxm_serial``): its longest
# requantisation (the parameters fetched, double rounding, shifts 30 left and 31 right) takes
# 104 with the cycle that takes the lane in
SERIAL_LANE_CYCLES = 128
# the word of the bit-serial VXM's parameter memory, and so of the host's parameter writes
PARAM_WORD_BITS = 32


class ConfigError(ValueError):
    """A configuration value is out of range. The message names the field, value and range."""


def _is_pow2(x):
    return x > 0 and (x & (x - 1)) == 0


# (field, lower bound, upper bound, must be a power of two, what it is)
_RANGES = {
    "lanes":      (4, 64, True,  "int8 lanes per vector; the MXM is lanes x lanes"),
    "banks":      (4, 16, False, "SRAM banks (int32 results are written as 4 byte planes)"),
    "depth":      (16, 65536, True, "words (vectors) per SRAM bank"),
    "acc_depth":  (2, 65536, True, "int32 vectors in the accumulator memory"),
    "imem_depth": (4, 65536, True, "instructions in the instruction memory"),
    "param_depth": (1, 4096, True, "rows of per-channel VXM parameters"),
    "vxm_passes": (1, 64 * 128, True, "cycles the VXM spends on one vector (lanes / "
                                      "vxm_passes lanes requantised per cycle; lanes * 128: "
                                      "one lane at a time, bit-serially)"),
    "tiles":      (1, 16, False, "tiles in a row on a chip (rtl.chip.LpuChip)"),
    "link_latency": (1, 64, False, "cycles a vector takes on the stream link between two "
                                   "neighbouring tiles"),
    "lut_products": (0, 4096, False, "products of the MXM built from logic rather than left "
                                     "to a DSP block (an FPGA with fewer DSPs than lanes**2)"),
    "read_registers": (0, 1, False, "registers after each block RAM's read port (SRAM banks, "
                                    "accumulator, parameters): 1 where a block RAM's clock-to-"
                                    "output leaves no time for logic (the ECP5 at 100 MHz), 0 "
                                    "where logic cells are scarce (the UP5K)"),
}


@dataclass(frozen=True)
class LpuConfig:
    """Parameters of one LPU tile.

    Raises :class:`ConfigError` naming the field, the value and the allowed range when a
    value is out of range.
    """
    lanes: int = 8
    banks: int = 4
    depth: int = 256
    acc_depth: int = 256
    imem_depth: int = 256
    param_depth: int = 64
    vxm_passes: int = 1
    tiles: int = 1
    link_latency: int = 1
    lut_products: int = 0
    read_registers: int = 1

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            lo, hi, pow2, what = _RANGES[f.name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"config field '{f.name}' ({what}) must be an integer, "
                                  f"got {value!r}")
            if not lo <= value <= hi or (pow2 and not _is_pow2(value)):
                rule = f"a power of two in [{lo}, {hi}]" if pow2 else f"in [{lo}, {hi}]"
                raise ConfigError(f"config field '{f.name}' ({what}) = {value} is out of "
                                  f"range: must be {rule}")
        if self.lanes < self.vxm_passes != self.lanes * SERIAL_LANE_CYCLES:
            raise ConfigError(f"config field 'vxm_passes' ({_RANGES['vxm_passes'][3]}) = "
                              f"{self.vxm_passes} is out of range: must be a power of two in "
                              f"[1, lanes={self.lanes}], or lanes*{SERIAL_LANE_CYCLES}="
                              f"{self.lanes * SERIAL_LANE_CYCLES}")
        if self.lut_products > self.lanes ** 2:
            raise ConfigError(f"config field 'lut_products' ({_RANGES['lut_products'][3]}) = "
                              f"{self.lut_products} is out of range: must be in [0, "
                              f"lanes**2={self.lanes ** 2}]")

    # ---- derived widths -------------------------------------------------------------------
    @property
    def word_bits(self):
        """Bits in one SRAM word: one vector of ``lanes`` int8."""
        return 8 * self.lanes

    @property
    def addr_bits(self):
        return (self.depth - 1).bit_length()

    @property
    def bank_bits(self):
        return max(1, (self.banks - 1).bit_length())

    @property
    def acc_addr_bits(self):
        return (self.acc_depth - 1).bit_length()

    @property
    def count_bits(self):
        """Width of a stream length: an MM/VX ``count`` (at most ``acc_depth``) or an LW's
        ``lanes`` rows. The ISA's field is wider; a legal program never sets the rest."""
        return max(self.acc_depth, self.lanes).bit_length()

    @property
    def vxm_serial(self):
        """The VXM requantises one lane at a time, bit-serially, ``SERIAL_LANE_CYCLES`` cycles
        each (``rtl.vector_unit_serial``): for an FPGA with no DSP block to spare for it."""
        return self.vxm_passes > self.lanes

    @property
    def vxm_group(self):
        """Lanes the VXM requantises per cycle (the pipelined VXM's)."""
        return max(1, self.lanes // self.vxm_passes)

    @property
    def vxm_pass_bits(self):
        """Width of a VXM pass number (at least 1 bit: Verilog has no zero-width vectors)."""
        return max(1, (self.vxm_passes - 1).bit_length())

    @property
    def param_rows(self):
        """Rows the parameter memory is built with: ``param_depth``, at least 2 (a one-row
        memory would have a zero-width address, which Verilog cannot declare)."""
        return max(2, self.param_depth)

    @property
    def host_data_bits(self):
        """Width of the host port's data bus: one int32 vector."""
        return 32 * self.lanes

    @property
    def param_part_bits(self):
        """Bits of a parameter row the host writes at once (its ``part``, the low bits of the
        host word): the whole host bus; with a bit-serial VXM, 32, because its parameters
        are in a 32-bit single-port memory that it reads a field at a time while it works
        (``rtl.vector_unit_serial``: the UP5K's SPRAMs, not 340 flip-flops)."""
        return PARAM_WORD_BITS if self.vxm_serial else self.host_data_bits

    @property
    def param_parts(self):
        """Host writes per parameter row (``lpu.contract.isa.param_parts``)."""
        from .isa import param_parts
        return param_parts(self.lanes, self.param_part_bits)

    # ---- latencies (cycles); the RTL is built to these, the model predicts with them ------
    @property
    def fetch_latency(self):
        """Cycles from the run's first cycle to the first cycle an instruction can issue: the
        sequencer decodes from an instruction register, loaded on the run's first cycle, or,
        with ``read_registers``, from a queue of the next instructions, from its fourth (the
        first is read on the first, after any write of the host's, and arrives in the queue
        on the second, so the instruction memory's output feeds only flip-flops)."""
        return 1 + 2 * self.read_registers

    @property
    def bank_start_latency(self):
        """Cycles from a bank's ``rd_start`` to its first read address: its address
        generator registers the start."""
        return 1

    @property
    def stream_start_latency(self):
        """Cycles from a stream's start (an LW's or MM's issue) to its first read address:
        the bank's address generator registers the start, so that the block RAM's address
        comes from flip-flops, not from the issue decision (the ULX3S's critical path); with
        ``read_registers`` the start is registered once more on its way from the sequencer
        to the four banks (the ULX3S's critical path at 71.9 MHz)."""
        return self.bank_start_latency + self.read_registers

    @property
    def sram_read_latency(self):
        """Cycles from a read address to its word on the bank's output: the block RAM's read,
        then ``read_registers`` registers (a block RAM's clock-to-output is 5.6 ns on the
        ECP5: at 100 MHz nothing but routing can follow it in the same cycle)."""
        return 1 + self.read_registers

    @property
    def host_read_latency(self):
        """Cycles from a host port read (``re``) to its ``rdata`` and ``rvalid``: a bank's
        read latency, for every region alike."""
        return self.sram_read_latency

    @property
    def mxm_latency(self):
        """Cycles from an activation vector entering the array to its result vector leaving
        it: the entry register, the skew of row ``lanes-1``, the column ripple, the de-skew of
        column 0, and in each PE its operands' register and its product's (a DSP block with
        a flip-flop on every side); with ``read_registers``, each of the two twice: a register
        of the fabric's in front of the DSP block's pins and one after them, so that the
        fabric reaches a DSP block only from and to flip-flops nearby (the weight buffer's
        select into the DSP's operand pins, and its product into the column's adder, were 24
        of the ULX3S 8-lane tile's 34 late paths at 93.05 MHz)."""
        return 2 * self.lanes + 2 + 2 * self.read_registers

    @property
    def acc_address_latency(self):
        """Cycles from the sequencer's accumulator and parameter read addresses (a VX's) to
        the block RAMs' read ports: with ``read_registers``, a register beside each memory,
        so that the registers the VX's issue loads stay by the issue logic (the issue
        decision to the parameter row's register, placed by the memory, was the ULX3S 8-lane
        tile's critical path at 86.3 MHz: 11.6 ns, 8.9 of them routing)."""
        return self.read_registers

    @property
    def acc_read_latency(self):
        """Cycles from an accumulator read address to its row on the read port (the VXM's),
        and a parameter row's: ``acc_address_latency``, the block RAM's read, then
        ``read_registers`` registers."""
        return self.acc_address_latency + 1 + self.read_registers

    @property
    def acc_update_delay(self):
        """Cycles from a result vector leaving the array to its accumulator update being
        written: the read-modify-write's read, ``read_registers`` registers, then the add
        (updates of rows still being written are forwarded)."""
        return 1 + self.read_registers

    @property
    def acc_visible_delay(self):
        """Cycles from a result vector leaving the array to the first accumulator read (its
        address leaving the sequencer) that sees its update: written ``acc_update_delay``
        later into a read-first memory, which the read reaches ``acc_address_latency``
        after its address leaves."""
        return self.acc_update_delay + 1 - self.acc_address_latency

    @property
    def vxm_latency(self):
        """Cycles from an int32 vector's first pass entering the vector unit to its int8/int32
        result: the entry register, fourteen pipeline stages (sixteen with ``read_registers``:
        a register after the DSP blocks' products, and one saturating the requantised sum to
        9 bits before the clamp's compares) and the output lanes
        (``rtl.vector_unit``), plus one cycle for each further pass. Bit-serially, lane
        ``j`` is taken in on pass ``j * SERIAL_LANE_CYCLES`` and its result is in place
        before the next lane's pass: the vector is complete the cycle after its last pass
        (``rtl.vector_unit_serial``)."""
        return self.vxm_passes if self.vxm_serial else 15 + 2 * self.read_registers + self.vxm_passes

    @property
    def vx_write_latency(self):
        """Cycles from the VXM's result leaving it to its SRAM write and its link send: with
        ``read_registers``, a register in front of each bank's write port, so that what
        crosses the chip from the VXM's output ends in flip-flops (the VXM's output to a
        bank's write data was the ULX3S board preset's critical path at 82.9 MHz: 12.1 ns,
        9.8 of them routing)."""
        return self.read_registers

    # ---- presentation -------------------------------------------------------------------
    def as_dict(self):
        return asdict(self)

    def describe(self):
        return ", ".join(f"{k}={v}" for k, v in self.as_dict().items())


PRESETS = {
    # fastest to simulate; the regression's workhorse and the Icarus cross-check. Its VXM
    # requantises one lane per cycle, as on the iCEBreaker (UP5K: 8 DSPs); 6 of its 16
    # products are built from logic (as the large preset's beyond the ECP5-85F's DSPs)
    "tiny": LpuConfig(lanes=4, banks=4, depth=256, acc_depth=128, imem_depth=256, param_depth=16,
                      vxm_passes=4, lut_products=6),
    # the reference tile: every lane requantised every cycle
    "default": LpuConfig(lanes=8, banks=4, depth=512, acc_depth=256, imem_depth=512, param_depth=64),
    # a 16x16 array: what an FPGA of ECP5-85F size can hold; the VXM does 8 lanes per cycle.
    # The 85F has 156 MULT18X18D: 4 for each of the VXM's 8 32x32 multipliers, 124 for
    # products, so 132 of the 256 products are built from logic
    "large": LpuConfig(lanes=16, banks=4, depth=1024, acc_depth=512, imem_depth=1024, param_depth=64,
                       vxm_passes=2, lut_products=132),
    # board presets: exactly what `make bitstream BOARD=<name>` builds, so it is linted and
    # simulated like the others. iCEBreaker (iCE40 UP5K): the smallest tile, a bit-serial VXM
    # (its parameters in two SPRAMs: 16 rows cost no more than 1), small memories, no
    # registers after the block RAMs (12 MHz; cells are what is short)
    "icebreaker": LpuConfig(lanes=4, banks=4, depth=64, acc_depth=16, imem_depth=32,
                            param_depth=16, vxm_passes=4 * SERIAL_LANE_CYCLES, read_registers=0),
    # ULX3S (ECP5-85F): the default tile with a smaller parameter memory
    "ulx3s": LpuConfig(lanes=8, banks=4, depth=512, acc_depth=256, imem_depth=512, param_depth=16),
}

# presets that a board is built from (``lpu.tools.fpga.BOARDS``), and each board's tile clock
# in MHz: the iCEBreaker's 12 MHz oscillator; on the ULX3S an ECP5 PLL from its 25 MHz one,
# at 100 MHz (timing met post-route since session 22; 65 MHz before)
BOARD_CLOCK_MHZ = {"icebreaker": 12.0, "ulx3s": 100.0}
BOARD_PRESETS = tuple(BOARD_CLOCK_MHZ)


def preset(name):
    """The named preset; ``NAME*N`` is a chip of N such tiles (``tiny*4``). An unknown name
    raises :class:`ConfigError` listing the known ones."""
    base, star, n = name.partition("*")
    try:
        cfg = PRESETS[base]
    except KeyError:
        raise ConfigError(f"unknown preset '{name}': choose one of "
                          f"{', '.join(PRESETS)} (or NAME*TILES for a chip)") from None
    if star:
        if not n.isdigit():
            raise ConfigError(f"preset '{name}': the number of tiles after '*' must be an "
                              f"integer")
        from dataclasses import replace
        cfg = replace(cfg, tiles=int(n))
    return cfg
