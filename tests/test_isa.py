import numpy as np
import pytest

from lpu.contract.config import preset
from lpu.contract.isa import FIELDS, INSN_BITS, Insn, Op, ProgramError, decode, encode, validate_program, \
    ROUNDING, pack_params, param_bits, param_fields


def test_fields_disjoint_and_fit():
    used = 0
    for name, (lsb, width) in FIELDS.items():
        mask = ((1 << width) - 1) << lsb
        assert used & mask == 0, f"field {name} overlaps another"
        used |= mask
    assert used < (1 << INSN_BITS)


def test_roundtrip():
    rng = np.random.default_rng(1)
    for _ in range(500):
        kw = {name: int(rng.integers(0, 1 << width)) for name, (lsb, width) in FIELDS.items()}
        insn = Insn(**kw)
        assert decode(encode(insn)) == insn


def test_encode_wrong():
    with pytest.raises(ProgramError, match=r"^MM: field 'count' = 70000 does not fit in 16 bits$"):
        encode(Insn(Op.MM, count=70000))
    with pytest.raises(ProgramError, match="wider than 96 bits"):
        decode(1 << 96)


def test_validate_program_wrong():
    cfg = preset("tiny")
    with pytest.raises(ProgramError, match="empty program"):
        validate_program([], cfg)
    with pytest.raises(ProgramError, match="does not end with HALT"):
        validate_program([Insn(Op.LW)], cfg)
    with pytest.raises(ProgramError, match=r"instruction 0 \(.*\): unknown opcode 7"):
        validate_program([Insn(7), Insn(Op.HALT)], cfg)
    with pytest.raises(ProgramError, match=r"instruction 1 .*bank 4 >= banks 4"):
        validate_program([Insn(Op.LW), Insn(Op.MM, bank=4, count=1), Insn(Op.HALT)], cfg)
    with pytest.raises(ProgramError, match=r"count must be in \[1, 128\]"):
        validate_program([Insn(Op.MM, count=0), Insn(Op.HALT)], cfg)
    with pytest.raises(ProgramError, match="prow must be < param_depth 16"):
        validate_program([Insn(Op.VX, count=1, prow=16), Insn(Op.HALT)], cfg)
    with pytest.raises(ProgramError, match="instruction memory holds 256"):
        validate_program([Insn(Op.LW)] * 300 + [Insn(Op.HALT)], cfg)


def test_pack_params_layout():
    L = 4
    word = pack_params(L, bias=[1, -1, 2, -2], multiplier=[3, 4, 5, 6], shift=[-1, 0, 1, -31],
                       zero_point=-5, act_min=-128, act_max=127, rounding=ROUNDING["double"])
    assert word < (1 << param_bits(L))
    pos = 0
    fields = {}
    for name, bits, n in param_fields(L):
        vals = []
        for _ in range(n):
            v = (word >> pos) & ((1 << bits) - 1)
            vals.append(v - (1 << bits) if v >> (bits - 1) else v)
            pos += bits
        fields[name] = vals
    assert fields["bias"] == [1, -1, 2, -2]
    assert fields["shift"] == [-1, 0, 1, -31]
    assert fields["zero_point"] == [-5] and fields["act_max"] == [127]
    assert fields["rounding"] == [ROUNDING["double"]] * L     # the row's, once per lane
