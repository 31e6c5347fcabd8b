"""The tile's instruction set: the one definition of the encoding.

The RTL decoder (``rtl/sequencer.py``), the golden model (``model/tile.py``) and the
assembler (``lpu/host/compiler.py``) all read the field table below; ``docs/isa.md`` describes it.
Pure Python: no HDL import.

An instruction is ``INSN_BITS`` wide. Every field sits at the same place in every opcode that
uses it, so the decoder slices each field once.
"""

from dataclasses import dataclass

__all__ = ["INSN_BITS", "FIELDS", "Op", "Insn", "ProgramError", "encode", "decode",
           "validate_program", "ROUNDING"]

INSN_BITS = 96


class ProgramError(ValueError):
    """A program is malformed: bad opcode, field out of range, no HALT, or a race."""


class Op:
    LW = 1    # load weights: LANES rows from an SRAM bank into a shadow weight buffer
    MM = 2    # matmul: stream activation vectors through the array into the accumulators
    VX = 3    # vector unit: accumulators -> bias, requantise/pass -> SRAM (or the east link)
    RX = 4    # receive: the next `count` vectors arriving from the west link -> SRAM
    WAIT = 5  # issue `count` cycles after the previous WAIT issued (or the run started)
    HALT = 15  # wait for every unit to drain, then raise done

    NAMES = {1: "LW", 2: "MM", 3: "VX", 4: "RX", 5: "WAIT", 15: "HALT"}


# name: (lsb, width)
FIELDS = {
    "op":        (0, 4),
    "early":     (4, 1),    # RX: 1 lets LW and MM run on while its vectors arrive (the next
                            # RX, which issues once this one has them all, a WAIT fence=1 or
                            # HALT waits)
    "fence":     (5, 1),    # WAIT: 1 also waits until every received vector has landed
    "keep":      (6, 1),    # VX with link=1: 1 also writes each row to SRAM (send and keep)
    "bank":      (8, 8),    # LW/MM: bank read; VX: first bank written
    "base":      (16, 16),  # LW/MM: first address read; VX: first address written
    "stride":    (32, 16),  # address step, wraps at the bank's end; 0 repeats one word
    "count":     (48, 16),  # MM/VX: vectors streamed (>= 1); LW: ignored (always LANES);
                            # RX: vectors received; WAIT: cycles after the previous WAIT
    "acc_base":  (64, 16),  # MM: first accumulator written; VX: first accumulator read
    "wbuf":      (80, 1),   # LW: shadow buffer loaded; MM: weight buffer used
    "accumulate": (81, 1),  # MM: 1 adds to the accumulators, 0 overwrites them
    "quant":     (82, 1),   # VX: 1 requantises to int8, 0 writes int32 as 4 byte planes
    "link":      (83, 1),   # VX: 1 sends each int8 row east on the link instead of to SRAM
    "prow":      (84, 12),  # VX: row of per-channel parameters (bias, multiplier, shift, ...)
}

# which fields each opcode reads
OP_FIELDS = {
    Op.LW: ("bank", "base", "stride", "wbuf"),
    Op.MM: ("bank", "base", "stride", "count", "acc_base", "wbuf", "accumulate"),
    Op.VX: ("bank", "base", "stride", "count", "acc_base", "quant", "prow", "link", "keep"),
    Op.RX: ("bank", "base", "stride", "count", "early"),
    Op.WAIT: ("count", "fence"),
    Op.HALT: (),
}


@dataclass(frozen=True)
class Insn:
    op: int
    bank: int = 0
    base: int = 0
    stride: int = 1
    count: int = 0
    acc_base: int = 0
    wbuf: int = 0
    accumulate: int = 0
    quant: int = 0
    prow: int = 0
    link: int = 0
    early: int = 0
    fence: int = 0
    keep: int = 0

    def __str__(self):
        name = Op.NAMES.get(self.op, f"op{self.op}")
        args = ", ".join(f"{f}={getattr(self, f)}" for f in OP_FIELDS.get(self.op, ())
                         if f not in ("link", "early", "fence", "keep") or getattr(self, f))
        return f"{name} {args}".strip()


def encode(insn):
    word = 0
    for name, (lsb, width) in FIELDS.items():
        value = getattr(insn, name)
        if not 0 <= value < (1 << width):
            raise ProgramError(f"{Op.NAMES.get(insn.op, insn.op)}: field '{name}' = {value} "
                               f"does not fit in {width} bits")
        word |= value << lsb
    return word


def decode(word):
    if not 0 <= word < (1 << INSN_BITS):
        raise ProgramError(f"instruction word {word:#x} is wider than {INSN_BITS} bits")
    return Insn(**{name: (word >> lsb) & ((1 << width) - 1)
                   for name, (lsb, width) in FIELDS.items()})


def _problem(insn, config):
    """What is wrong with one instruction ('' if nothing; 'HALT' for the end)."""
    if insn.op not in Op.NAMES:
        return f"unknown opcode {insn.op}"
    if insn.op == Op.HALT:
        return "HALT"
    if insn.bank >= config.banks:
        return f"bank {insn.bank} >= banks {config.banks}"
    if insn.base >= config.depth or insn.stride >= config.depth:
        return f"base/stride must be < depth {config.depth}"
    if insn.op in (Op.MM, Op.VX):
        if not 1 <= insn.count <= config.acc_depth:
            return f"count must be in [1, {config.acc_depth}]"
        if insn.acc_base >= config.acc_depth:
            return f"acc_base must be < acc_depth {config.acc_depth}"
    if insn.op == Op.VX and insn.prow >= config.param_depth:
        return f"prow must be < param_depth {config.param_depth}"
    if insn.op == Op.VX and insn.link and not insn.quant:
        return "link=1 sends int8 rows: it needs quant=1"
    if insn.op == Op.VX and insn.keep and not insn.link:
        return "keep=1 also keeps the rows it sends: it needs link=1"
    if insn.op == Op.RX and not 1 <= insn.count <= config.depth:
        return f"count must be in [1, {config.depth}]"
    return ""


def validate_program(insns, config):
    """Check a program against a configuration; raise :class:`ProgramError` naming the
    first bad instruction. Races between units are checked by the model as it runs."""
    if not insns:
        raise ProgramError("empty program")
    if len(insns) > config.imem_depth:
        raise ProgramError(f"program has {len(insns)} instructions, instruction memory "
                           f"holds {config.imem_depth}")
    for pc, insn in enumerate(insns):
        problem = _problem(insn, config)
        if problem == "HALT":
            return
        if problem:
            raise ProgramError(f"instruction {pc} ({insn}): {problem}")
    raise ProgramError("program does not end with HALT")


# ---- the host port ---------------------------------------------------------------------------
class Region:
    """Host-port regions (``h_region``)."""
    SRAM = 0      # h_bank, h_addr: one word (lanes int8, low bits of the host data bus)
    IMEM = 1      # h_addr: one instruction
    PARAM = 2     # h_addr: parameter row, h_part: which slice of it (LpuConfig.param_part_bits)
    COUNTER = 3   # h_addr: counter index (read only), in the order of COUNTERS


# performance counters, in host-port order
COUNTERS = ("cycles", "mxm_busy", "lw_rows", "vx_rows", "stalls", "insns")


# ---- the parameter memory: one row of per-output-channel VXM parameters -------------------
# The requantisation's rounding, chosen per parameter row (so per layer): the row's
# ``rounding`` field holds the code, once per lane (each lane of the VXM reads its own copy:
# one flag shared by every lane was routed across the ECP5 into a lane's shifter, the
# ULX3S's critical path at 62.4 MHz). ``single``: TFLite >= 2.20, ruy, XNNPACK (LiteRT's
# default); ``double``: gemmlowp's (TFLite without TFLITE_SINGLE_ROUNDING, CMSIS-NN).
ROUNDING = {"single": 0, "double": 1}


def param_fields(lanes):
    """(name, bits per element, elements), low bits first. The RTL layout is built from this."""
    return [("bias", 32, lanes), ("multiplier", 32, lanes), ("shift", 8, lanes),
            ("zero_point", 8, 1), ("act_min", 8, 1), ("act_max", 8, 1), ("rounding", 8, lanes)]


def param_bits(lanes):
    return sum(b * n for _, b, n in param_fields(lanes))


def param_parts(lanes, part_bits):
    """How many ``part_bits`` parts one parameter row takes (``LpuConfig.param_part_bits``)."""
    return -(-param_bits(lanes) // part_bits)


def param_offset(lanes, name, index=0):
    """Where element ``index`` of field ``name`` starts in a packed parameter row (bits)."""
    pos = 0
    for field, bits, n in param_fields(lanes):
        if field == name:
            return pos + bits * index
        pos += bits * n
    raise KeyError(name)


def param_words(lanes, part_bits, packed):
    """A packed parameter row as the parts the host writes: part 0, 1, ..."""
    mask = (1 << part_bits) - 1
    return [(packed >> (part * part_bits)) & mask
            for part in range(param_parts(lanes, part_bits))]


def pack_params(lanes, bias, multiplier, shift, zero_point, act_min, act_max,
                rounding=ROUNDING["single"]):
    """One parameter row as an integer (the host port writes it in ``host_data_bits`` words).
    ``rounding``: a code of :data:`ROUNDING`, the row's (written once per lane)."""
    values = dict(bias=bias, multiplier=multiplier, shift=shift, zero_point=[zero_point],
                  act_min=[act_min], act_max=[act_max], rounding=[rounding] * lanes)
    word, pos = 0, 0
    for name, bits, n in param_fields(lanes):
        vals = list(values[name]) if n > 1 else list(values[name])[:1]
        if len(vals) != n:
            raise ValueError(f"parameter '{name}' needs {n} values, got {len(vals)}")
        for v in vals:
            word |= (int(v) & ((1 << bits) - 1)) << pos
            pos += bits
    return word
