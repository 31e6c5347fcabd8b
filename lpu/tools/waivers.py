"""Why a mutant survives, or why a source line is not covered, where a person has worked it
out: each reason is matched against what the report shows, so it follows the code when lines
move and stops matching when the code it explains changes. ``make mutate`` and ``make
coverage`` print the reason beside each survivor or uncovered line; one with no reason is
reported as not analysed.
"""

import re

__all__ = ["mutant_reason", "coverage_reason", "MUTANTS", "COVERAGE"]

# (regex over "<source line text> | <mutation command>", why it survives)
MUTANTS = [
    (r"vx_pass\.eq\(vx_pass \+ 1\).*-port Y -portbit ([2-9]|\d\d)\b",
     "equivalent: vx_pass is vxm_pass_bits wide; the adder's higher bits are cut off by the "
     "assignment"),
    (r"total\[0\]\.eq\(31 - shift\).*-port Y -portbit ([6-9]|\d\d)\b",
     "equivalent: total is 6 bits; the subtractor's higher bits are cut off by the "
     "assignment"),
    (r"half\[0\]\.eq\(30 - shift\).*-port Y -portbit ([6-9]|\d\d)\b",
     "equivalent: half is 6 bits; the subtractor's higher bits are cut off by the assignment"),
    (r"right\[0\]\.eq\(Mux\(shift < 0, -shift, 0\)\[:5\]\).*-port Y -portbit ([5-9]|\d\d)\b",
     "equivalent: only the low 5 bits of the shift are kept"),
    (r"stage3\.eq\(Mux\(single\[1\], sat, high\)\).*-portbit (3[4-9]|[4-9]\d)\b",
     "equivalent: stage3 is 34 bits; the multiplexer's higher bits are cut off"),
    (r"self\.o_valid\.eq\(v\[2\] & \(k\[2\] == P - 1\)\).*-mode cnot0 .*-portbit 1 -ctrlbit 0",
     "equivalent: k ^ (~k[0] << 1) maps 3 to 3 and nothing else to 3"),
    (r"units\[\"mm\"\]\.eq\(rules\.mm_stream\(count\) - 1\).*-mode cnot1 .*-ctrlbit (7|8|9|10)\b",
     "equivalent on legal programs: count is in [1, acc_depth] (a power of two), so the top "
     "bit of count - 1, the control of this mutation, is always 0"),
    (r"prod \+ Mux\(prod >= 0, .*-cell \S+ -port A -portbit (\d|[1-5]\d|6[0-2]) ",
     "equivalent: prod >= 0 depends on prod's sign bit (63) only"),
    (r"-mode cnot1 -module \S+ -cell \S+ -port A -portbit \d+ -ctrlbit \d+ .*\| "
     r"\$(logic_not|reduce_bool|reduce_or)$",
     "equivalent: x == 0 (x != 0) is the same when one bit of x is flipped only while another "
     "bit is 1 (x is non-zero either way)"),
    (r"units\[\"acc\"\]\.eq\(rules\.acc_ready\(count\) - 1\).*-mode cnot1 .*-ctrlbit (9|[1-9]\d)\b",
     "equivalent on legal programs: acc_ready(count) - 1 fits the acc counter (tiny 8 bits, "
     "default 9) for every count in [1, acc_depth], so the control bit is always 0"),
    (r"iw\.en\.eq\(self\.imem_we & ~self\.busy\).*-port B ",
     "equivalent in the tile: imem_we is host_w & (region == IMEM), and host_w already "
     "requires the tile idle; the sequencer's own guard is redundant there"),
    (r"cnt\[name\]\.eq\(cnt\[name\] \+ events\[name\]\).*-ctrlbit (1[89]|2\d|3[0-2])\b",
     "not reached: the control bit is a performance counter's bit 18 or above (or the adder's "
     "carry out), which the simulations (at most about 2**17 cycles) never set"),
    (r"bank_d = Signal\(4\).*-port D -portbit [2-3] ",
     "equivalent for legal host accesses: with 4 banks a bank number is 0-3, so bits 2-3 of "
     "the registered bank select are 0"),
    (r"mask\.eq\(\(Const\(1, 33\) << right\[2\]\) - 1\).*-port Y -portbit (3[2-9]|[4-9]\d)\b",
     "equivalent: mask keeps the low 32 bits of (1 << right) - 1, which depend only on the "
     "shift's low 32 bits"),
]

# (regex every missed point of the line matches, why it is not covered)
COVERAGE = [
    (r"count_\w+\[\d+\]|counters\[\d+\]|\bcounter\[\d+\]",
     "32-bit performance counters: the longest run (test_counters_past_16_bits) is about "
     "2**17 cycles; the bits above are never reached in simulation"),
    (r"remaining\[\d+\]",
     "an address stream's remaining count is count - 1 <= depth - 1: the top bit, there for "
     "count = depth, never sets"),
    (r"multiplier\[(31|63|95|127)\]|mult\d+\[31\]|ovf\d+|cond_then",
     "the tile's tests use TFLite multipliers, in [0, 2**31): the sign bit never sets there, "
     "so SRDHM's overflow case (both operands -2**31) is not reached through the tile; the "
     "VXM's own testbench covers negative multipliers and that case"),
    (r"mask\d+\[31\]", "the rounding mask is 2**right - 1 with right <= 31: bit 31 never sets"),
    (r"hit32_\d+:1->0", "constant 1 with 4 banks (every int32 VX writes every bank)"),
    (r"utx\.shift\[9\]:1->0", "the UART transmitter's stop bit: always 1"),
    (r"imem_addr\[\d+\]", "the host port's 16-bit address is wider than the instruction memory"),
    (r"bridge\.core\.(cmd|length|idx|status|rlen|tx_idx|buf)\[\d+\]|bridge\.core\.(if|elsif)|"
     r"urx\.(if|else)|urx\.timer\[\d+\]",
     "serial-bridge states and widths the simulated frames never reach (lengths above 1023, "
     "command bytes with bit 7, time-outs in the middle of some fields); the formal proofs "
     "`bridge` and `bridge_resync` cover every byte sequence, these included"),
    (r"i_params\.rounding\[\d*[1-7]\]|rounding\d*\[[1-7]\]",
     "the rounding code is 0 (single) or 1 (double): its other bits are never set"),
    (r"seq\.rx_stride\[\d+\]:1->0",
     "a stimulus gap, not dead logic: the receive stride register keeps its value from one RX "
     "to the next, and a seed's few receives (every stride class is covered, tile.rx.stride) "
     "do not clear every bit they set"),
    (r"tile\.link_(in|out)_(data|valid)",
     "the board holds one tile: its links are idle (the chip testbench drives them)"),
    (r"\bdone:1->0|host__done(\$\d+)?:1->0",
     "the bridge testbench starts one program: done never falls again"),
]


def _match(table, text):
    return next((why for pattern, why in table if re.search(pattern, text)), None)


def mutant_reason(source_text, mutation, cell_type=None):
    """Why a mutant of this source line survives, or None. Matched against
    ``"<source line> | <mutation> | <cell type>"``."""
    return _match(MUTANTS, f"{source_text.strip()} | {mutation} | {cell_type or '?'}")


def coverage_reason(missed):
    """Why a line with these missed points is not covered: a reason that explains every one
    of them, or None."""
    reasons = {_match(COVERAGE, m) for m in missed}
    return "; ".join(sorted(reasons)) if missed and None not in reasons else None
