"""Functional coverage of the regression, declared with cocotb-coverage.

Every testbench imports this module and calls :func:`declare` once, so every run's
``coverage.yml`` declares every cover point (with zero hits where that testbench does not
sample it); ``lpu.tools.coverage`` merges the files of a regression into
``build/sim/coverage.json``. The stimulus is steered towards the holes (:func:`holes`) by the
constrained-random generators of the tile and VXM testbenches.

Cover points (the bins are the declared figure ``make sim`` reports):

* ``tile.insn``: every LW/MM/VX instruction a tile test runs, kind x stride (0, 1, odd,
  even > 1) x bank, and kind x whether its stream wraps past the bank's end;
* ``tile.mm.accumulate``: MM overwriting and accumulating;
* ``tile.rx.bank``, ``tile.rx.stride``: a receive (RX) into every bank, with every stride class;
* ``tile.wait``: a WAIT issuing on its mark (binding) and one the program reaches later;
* ``tile.rx.early``, ``tile.wait.fence``: ordinary and early receives, and a ``WAIT fence=1``
  held past its mark until its receives landed (the chip's pipelined programs);
* ``tile.rx.beside_vx``: a received vector written on a cycle a VX writes another bank
  (every bank has its own write port);
* ``tile.vx.link``: a VX sending its rows east, and one sending and keeping them (``keep``:
  a layer split between two tiles);
* ``tile.bank_overlap``: an LW or MM issuing on each bank while each other bank's read
  stream is still running (the per-bank busy signals, bank by bank);
* ``tile.vx.int32_bank``: int32 VX writes (four byte planes) starting at every bank;
* ``tile.limit``: every timing rule (``lpu.contract.timing.RULES``) binding an instruction
  at exactly its limit (the instruction issues on the first cycle the rule allows);
* ``vxm.shift``: every shift in [-31, 30], in each rounding;
* ``vxm.tie``: exact halves of each rounding step (single; double's high multiply and its
  divide by a power of two), for positive and negative values;
* ``vxm.saturation``: the int32 bias add wrapping, double's left shift wrapping, the one
  case SRDHM saturates (both operands INT32_MIN), clamps at the low and the high end;
* ``bridge.status``: every reply status of the serial bridge.
"""

import os

import numpy as np

from lpu.contract.isa import Op, ROUNDING
from lpu.contract.protocol import Status
from lpu.contract.timing import RULES

__all__ = ["declare", "sample_program", "sample_requant", "sample_status", "holes", "export",
           "KINDS", "STRIDES", "stride_kind"]

KINDS = ("LW", "MM", "VX")
STRIDES = ("0", "1", "odd", "even")
TIES = ("single+", "single-", "double_mul+", "double_mul-", "double_pot+", "double_pot-")
SATURATION = ("bias_wraps", "left_shift_wraps", "srdhm_overflow", "clamp_low", "clamp_high")
STATUSES = tuple(sorted(Status.NAMES))

_samplers = {}


def stride_kind(stride):
    return "0" if stride == 0 else "1" if stride == 1 else "odd" if stride % 2 else "even"


def declare(config):
    """Declare every cover point for ``config`` (idempotent); returns the samplers."""
    if _samplers:
        return _samplers
    from cocotb_coverage.coverage import CoverCross, CoverPoint

    @CoverPoint("tile.insn.kind", xf=lambda k, s, b, w: k, bins=list(KINDS))
    @CoverPoint("tile.insn.stride", xf=lambda k, s, b, w: s, bins=list(STRIDES))
    @CoverPoint("tile.insn.bank", xf=lambda k, s, b, w: b, bins=list(range(config.banks)))
    @CoverPoint("tile.insn.wraps", xf=lambda k, s, b, w: w, bins=[False, True])
    @CoverCross("tile.insn.kind_stride_bank",
                items=["tile.insn.kind", "tile.insn.stride", "tile.insn.bank"])
    @CoverCross("tile.insn.kind_wraps", items=["tile.insn.kind", "tile.insn.wraps"])
    def insn(kind, stride, bank, wraps):
        pass

    @CoverPoint("tile.mm.accumulate", bins=["overwrite", "accumulate"])
    def mm(mode):
        pass

    @CoverPoint("tile.vx.int32_bank", bins=list(range(config.banks)))
    def vx_int32(bank):
        pass

    @CoverPoint("tile.rx.bank", bins=list(range(config.banks)))
    def rx_bank(bank):
        pass

    @CoverPoint("tile.rx.stride", bins=list(STRIDES))
    def rx_stride(kind):
        pass

    @CoverPoint("tile.bank_overlap", bins=[(b, o) for b in range(config.banks)
                                           for o in range(config.banks) if o != b])
    def overlap(pair):
        pass

    @CoverPoint("tile.wait", bins=["binding", "late"])
    def wait(kind):
        pass

    @CoverPoint("tile.rx.early", bins=["ordinary", "early"])
    def rx_early(kind):
        pass

    @CoverPoint("tile.wait.fence", bins=["held past its mark"])
    def wait_fence(kind):
        pass

    @CoverPoint("tile.rx.beside_vx", bins=["a VX writes another bank on the cycle"])
    def rx_beside_vx(kind):
        pass

    @CoverPoint("tile.vx.link", bins=["send", "send and keep"])
    def vx_link(kind):
        pass

    @CoverPoint("tile.limit", bins=list(RULES))
    def limit(rule):
        pass

    @CoverPoint("vxm.shift.value", xf=lambda r, s: s, bins=list(range(-31, 31)))
    @CoverPoint("vxm.shift.rounding", xf=lambda r, s: r, bins=list(ROUNDING))
    @CoverCross("vxm.shift.rounding_x_value", items=["vxm.shift.rounding", "vxm.shift.value"])
    def shift(rounding, value):
        pass

    @CoverPoint("vxm.tie", bins=list(TIES))
    def tie(kind):
        pass

    @CoverPoint("vxm.saturation", bins=list(SATURATION))
    def saturation(kind):
        pass

    @CoverPoint("bridge.status", bins=list(STATUSES))
    def status(code):
        pass

    _samplers.update(insn=insn, mm=mm, vx_int32=vx_int32, rx_bank=rx_bank, rx_stride=rx_stride,
                     overlap=overlap,
                     wait=wait, rx_early=rx_early, wait_fence=wait_fence,
                     rx_beside_vx=rx_beside_vx, vx_link=vx_link,
                     limit=limit, shift=shift, tie=tie,
                     saturation=saturation, status=status)
    return _samplers


def sample_program(config, program, timing):
    """Sample the instructions of a program the tile ran, and the rules that bound them
    (``timing.limits``, from the model's schedule)."""
    s = declare(config)
    for insn in program:
        if insn.op == Op.RX:
            s["rx_bank"](insn.bank)
            s["rx_stride"](stride_kind(insn.stride))
            s["rx_early"]("early" if insn.early else "ordinary")
    for arrivals in timing.rx.values():
        if any(timing.sram_write_banks.get(c) for c in arrivals):
            s["rx_beside_vx"]("a VX writes another bank on the cycle")
    for pair in bank_overlaps(config, program, timing):
        s["overlap"](pair)
    mark = 0
    for insn, i in zip(program, timing.issue):
        if insn.op == Op.WAIT:       # issued on its mark, or the program reached it later
            s["wait"]("binding" if i == mark + insn.count else "late")
            if insn.fence and i > mark + insn.count:
                s["wait_fence"]("held past its mark")
            mark = i
    for insn in program:
        if insn.op not in (Op.LW, Op.MM, Op.VX):
            continue
        kind = Op.NAMES[insn.op]
        n = config.lanes if insn.op == Op.LW else insn.count
        s["insn"](kind, stride_kind(insn.stride), insn.bank,
                  insn.base + (n - 1) * insn.stride >= config.depth)
        if insn.op == Op.MM:
            s["mm"]("accumulate" if insn.accumulate else "overwrite")
        if insn.op == Op.VX and not insn.quant:
            s["vx_int32"](insn.bank)
        if insn.op == Op.VX and insn.link:
            s["vx_link"]("send and keep" if insn.keep else "send")
    for rules in timing.limits:
        for rule in rules:
            s["limit"](rule)


def bank_overlaps(config, program, timing):
    """(bank, other) for every LW or MM that issues on ``bank`` while a read stream of
    ``other`` is still running (from the model's schedule)."""
    from lpu.contract.timing import Rules
    R = Rules(config)
    streams, pairs = [], set()
    for insn, i in zip(program, timing.issue):
        if insn.op not in (Op.LW, Op.MM):
            continue
        pairs.update((insn.bank, b) for b, end in streams if b != insn.bank and i < end)
        n = R.lw_stream if insn.op == Op.LW else R.mm_stream(insn.count)
        streams.append((insn.bank, i + n))
    return pairs


def requant_events(x, params):
    """Which ties and saturations one vector's requantisation meets: ``(ties, saturations)``,
    sets of :data:`TIES` and :data:`SATURATION` names. ``x`` is acc + bias before wrapping."""
    from model.vxm import INT32_MAX, INT32_MIN, srdhm, wrap32, multiply_by_quantized_multiplier
    x = np.asarray(x, np.int64)
    mult = np.asarray(params["multiplier"], np.int64)
    shift = np.asarray(params["shift"], np.int64)
    rounding = int(params.get("rounding", ROUNDING["single"]))
    ties, sats = set(), set()
    xw = wrap32(x)
    if ((x < INT32_MIN) | (x > INT32_MAX)).any():
        sats.add("bias_wraps")
    sign = lambda v: np.where(v < 0, "-", "+")
    if rounding == ROUNDING["single"]:
        t = 31 - shift
        prod = xw * mult
        half = np.int64(1) << (t - 1)
        hit = (prod & ((half << 1) - 1)) == half
        ties.update(f"single{c}" for c in sign(prod)[hit])
    else:
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        shifted = xw << left
        if (shifted != wrap32(shifted)).any():
            sats.add("left_shift_wraps")
        ab = wrap32(shifted) * mult
        hit = (ab & ((1 << 31) - 1)) == (1 << 30)
        ties.update(f"double_mul{c}" for c in sign(ab)[hit])
        if ((wrap32(shifted) == INT32_MIN) & (mult == INT32_MIN)).any():
            sats.add("srdhm_overflow")
        r = srdhm(wrap32(shifted), mult)
        hit = (right > 0) & ((r & ((np.int64(1) << right) - 1)) == (np.int64(1) << np.maximum(right - 1, 0)))
        ties.update(f"double_pot{c}" for c in sign(r)[hit])
    v = multiply_by_quantized_multiplier(xw, mult, shift, rounding) + np.int64(params["zero_point"])
    if (v < params["act_min"]).any():
        sats.add("clamp_low")
    if (v > params["act_max"]).any():
        sats.add("clamp_high")
    return ties, sats


def sample_requant(config, x, params):
    """Sample one vector through the VXM: its shifts (in its rounding), ties and saturations."""
    s = declare(config)
    name = {v: k for k, v in ROUNDING.items()}[int(params.get("rounding", ROUNDING["single"]))]
    for sh in set(np.asarray(params["shift"]).tolist()):
        s["shift"](name, int(sh))
    ties, sats = requant_events(x, params)
    for t in ties:
        s["tie"](t)
    for k in sats:
        s["saturation"](k)


def sample_status(config, code):
    declare(config)["status"](int(code))


def holes(name):
    """Bins of cover item ``name`` not hit yet (in this process)."""
    from cocotb_coverage.coverage import coverage_db
    item = coverage_db[name]
    return [b for b, n in item.detailed_coverage.items() if n < item.at_least]


def export(path=None):
    """Write this process's coverage to ``coverage.yml`` (in the run folder)."""
    from cocotb_coverage.coverage import coverage_db
    if _samplers:
        coverage_db.export_to_yaml(path or os.environ.get("LPU_COVERAGE_FILE", "coverage.yml"))
