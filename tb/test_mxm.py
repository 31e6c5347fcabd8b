"""Matrix unit (array + accumulators) against ``model.mxm.MatmulModel``.

Every result vector leaving the array is checked for value and cycle; the accumulators are
read back while later tiles compute and checked against the model at the cycle of the read;
final matrices are also checked against ``np.matmul`` in int64 wrapped to int32.
"""

from dataclasses import dataclass, field

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from model.arith import wrap32
from model.mxm import Activations, MatmulModel
from rtl.interfaces import acc_tag_layout
from tb.common import TB, WATCHDOG, load_config, pack, unpack, rng_for, record_stats


@dataclass
class Schedule:
    """Stimulus for the unit: weight-row writes, activations and accumulator reads."""
    lanes: int
    acc_depth: int = 1 << 16                         # accumulator rows the unit has
    writes: list = field(default_factory=list)       # (cycle, buf, row, int8[L])
    acts: list = field(default_factory=list)         # (cycle, buf, int8[L], addr, accumulate)
    reads: list = field(default_factory=list)        # (cycle, addr)
    outputs: list = field(default_factory=list)      # (m, nt, read index) for final matrices
    load_free: int = 0                               # first cycle the weight port is free
    stream_free: int = 0                             # first cycle the activation port is free
    read_free: int = 0
    last_use: dict = field(default_factory=lambda: {0: -(1 << 40), 1: -(1 << 40)})
    tiles: int = 0

    def load(self, W, buf, earliest=0):
        """Load L x L weights into ``buf`` as early as the array allows: the first row is
        written no earlier than ``lanes - 1`` cycles after the last activation that uses the
        buffer entered (PE(k, L-1) uses row k ``k + L - 1`` cycles after entry)."""
        L = self.lanes
        c0 = max(self.load_free, self.last_use[buf] + L - 1, earliest)
        for k in range(L):
            self.writes.append((c0 + k, buf, k, W[k]))
        self.load_free = c0 + L
        return c0

    def stream(self, A, buf, addr0, accumulate, earliest=0):
        """Stream the rows of A (M x L) with ``buf``; row 0 of the weights must have been
        written before the first activation (then every row k is in place by cycle t + k)."""
        t0 = max(self.stream_free, earliest)
        for m, a in enumerate(A):
            self.acts.append((t0 + m, buf, a, addr0 + m, accumulate))
        self.stream_free = t0 + len(A)
        self.last_use[buf] = t0 + len(A) - 1
        self.tiles += 1
        return t0

    def read(self, addrs, visible):
        """Read accumulators once the last streamed activation's update is visible
        (``visible`` cycles after it entered)."""
        r0 = max(self.read_free, self.stream_free - 1 + visible)
        idx = []
        for i, a in enumerate(addrs):
            idx.append(len(self.reads))
            self.reads.append((r0 + i, a))
        self.read_free = r0 + len(addrs)
        return idx

    def gemm(self, A, B, visible, acc_base=0):
        """C = A @ B tile by tile, loads overlapping compute, K summed in the accumulators;
        accumulator regions alternate between N tiles so reads overlap the next tile; M is
        taken in slices of at most half the accumulator rows."""
        L = self.lanes
        Ap, Bp = _pad(A, 1, L), _pad(_pad(B, 0, L), 1, L)
        KT, NT = Ap.shape[1] // L, Bp.shape[1] // L
        rows = max(1, (self.acc_depth - acc_base) // 2)
        for m0 in range(0, A.shape[0], rows):
            As = Ap[m0:m0 + rows]
            M = As.shape[0]
            for nt in range(NT):
                region = acc_base + (nt % 2) * M
                for kt in range(KT):
                    buf = self.tiles % 2
                    c0 = self.load(Bp[kt * L:(kt + 1) * L, nt * L:(nt + 1) * L], buf)
                    self.stream(As[:, kt * L:(kt + 1) * L], buf, region, kt > 0, earliest=c0 + 1)
                for m, i in enumerate(self.read([region + m for m in range(M)], visible)):
                    self.outputs.append((m0 + m, nt, i))
        return NT


def _pad(x, axis, L):
    n = x.shape[axis]
    pad = (-n) % L
    if pad == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, pad)
    return np.pad(x, widths)


def expected_matmul(A, B):
    return wrap32(A.astype(np.int64) @ B.astype(np.int64))


_STATE = {}   # the model lives as long as the simulation: weights and accumulators persist


class MxmTB(TB):
    def __init__(self, dut):
        super().__init__(dut)
        if "model" not in _STATE:
            _STATE["model"] = MatmulModel(self.config)
            _STATE["cycle"] = 0
        self.model = _STATE["model"]
        self.L = self.config.lanes
        self.tag = acc_tag_layout(self.config)      # the activation's tag, as the RTL lays it out
        self.checked = 0
        self.busy = 0
        self.first_in = None
        self.last_out = None

    async def start(self):
        d = self.dut
        await self.reset([d.weights__valid, d.activations__valid])
        _STATE["cycle"] += 3 + 100        # reset cycles; keeps weight history strictly ordered

    async def run(self, sched):
        """Drive ``sched`` and check every result and every read against the model."""
        d, L, cfg = self.dut, self.L, self.config
        model = self.model
        base = _STATE["cycle"]        # absolute cycle of this run's cycle 0, for the model
        for c, buf, row, data in sorted(sched.writes, key=lambda w: w[0]):
            model.write_weights(base + c, buf, row, data)
        act = Activations(*zip(*[(c, b, a, ad, acc) for c, b, a, ad, acc in sched.acts])) \
            if sched.acts else Activations.concat([], L)
        act.data = act.data.reshape(-1, L)
        rc = np.array([r[0] for r in sched.reads], dtype=np.int64)
        ra = np.array([r[1] for r in sched.reads], dtype=np.int64)
        act.cycle = act.cycle + base
        results, reads = model.run(act, rc + base, ra)
        act.cycle = act.cycle - base
        lat = cfg.mxm_latency
        exp_out = {int(t) + lat: results[i] for i, t in enumerate(act.cycle)}
        self.model_last_out = max(exp_out) if exp_out else None
        read_index = {int(r) + cfg.acc_read_latency: i for i, r in enumerate(rc)}   # read -> data cycle
        exp_read = {c: reads[i] for c, i in read_index.items()}
        w_at = {c: (b, k, w) for c, b, k, w in sched.writes}
        a_at = {int(t): i for i, t in enumerate(act.cycle)}
        r_at = {int(r): int(ra[i]) for i, r in enumerate(rc)}
        end = max([0] + list(exp_out) + list(exp_read)) + 2
        got_reads = np.zeros_like(reads)
        for c in range(end):
            if c in w_at:
                b, k, w = w_at[c]
                d.weights__valid.value, d.weights__buf.value, d.weights__row.value = 1, b, k
                d.weights__data.value = pack(w, 8)
            else:
                d.weights__valid.value = 0
            if c in a_at:
                i = a_at[c]
                d.activations__valid.value, d.activations__buf.value = 1, int(act.buf[i])
                d.activations__tag.value = self.tag.const(
                    {"addr": int(act.addr[i]), "accumulate": int(act.accumulate[i])}).as_value().value
                d.activations__data.value = pack(act.data[i], 8)
                self.busy += 1
                self.first_in = c if self.first_in is None else self.first_in
            else:
                d.activations__valid.value = 0
            if c in r_at:
                d.rd_addr.value = r_at[c]
            await ReadOnly()
            valid = int(d.r_valid.value)
            assert valid == (c in exp_out), (
                f"cycle {c}: r_valid={valid}, model expects {'a result' if c in exp_out else 'none'}")
            if valid:
                got = unpack(d.r_data.value.to_unsigned(), 32, L)
                assert np.array_equal(got, exp_out[c]), (
                    f"cycle {c}: result {got.tolist()} != model {exp_out[c].tolist()}")
                self.checked += 1
                self.last_out = c
            if c in exp_read:
                got = unpack(d.rd_data.value.to_unsigned(), 32, L)
                assert np.array_equal(got, exp_read[c]), (
                    f"cycle {c}: accumulator read {got.tolist()} != model {exp_read[c].tolist()}")
                got_reads[read_index[c]] = got
                self.checked += 1
            await RisingEdge(d.clk)
        self.cycle += end
        _STATE["cycle"] += end
        return got_reads

    def assemble(self, sched, got_reads, M, N):
        L = self.L
        NT = -(-N // L)
        C = np.zeros((M, NT * L), dtype=np.int32)
        for m, nt, i in sched.outputs:
            C[m, nt * L:(nt + 1) * L] = got_reads[i]
        return C[:, :N]


async def run_gemms(dut, name, shapes, rng, fill="random"):
    tb = MxmTB(dut)
    await tb.start()
    L = tb.L
    sched = Schedule(L, acc_depth=tb.config.acc_depth)
    mats = []
    for M, K, N in shapes:
        A, B = _matrices(rng, M, K, N, fill)
        sched.gemm(A, B, tb.config.mxm_latency + tb.config.acc_visible_delay)
        mats.append((A, B, len(sched.outputs)))
    got = await tb.run(sched)
    start = 0
    for (A, B, upto), (M, K, N) in zip(mats, shapes):
        sub = Schedule(L, outputs=[(m, nt, i) for m, nt, i in sched.outputs[start:upto]])
        C = tb.assemble(sub, got, M, N)
        np.testing.assert_array_equal(C, expected_matmul(A, B),
                                      err_msg=f"{name}: C != A @ B for M,K,N={M},{K},{N}")
        start = upto
    record_stats(name, tb.cycle, vectors=tb.checked)
    return tb


def _matrices(rng, M, K, N, fill):
    if fill == "random":
        return (rng.integers(-128, 128, (M, K), dtype=np.int8),
                rng.integers(-128, 128, (K, N), dtype=np.int8))
    if fill == "extreme":
        return (rng.choice(np.array([-128, 127], np.int8), (M, K)),
                rng.choice(np.array([-128, 127], np.int8), (K, N)))
    if fill == "min":
        return np.full((M, K), -128, np.int8), np.full((K, N), -128, np.int8)
    if fill == "identity":
        return rng.integers(-128, 128, (M, K), dtype=np.int8), np.eye(K, N, dtype=np.int8)
    if fill == "zeros":
        return np.zeros((M, K), np.int8), rng.integers(-128, 128, (K, N), dtype=np.int8)
    if fill == "consecutive":
        A = (np.arange(M * K) % 256 - 128).astype(np.int8).reshape(M, K)
        B = (np.arange(K * N) % 255 - 127).astype(np.int8).reshape(K, N)
        return A, B
    raise ValueError(fill)


@cocotb.test(**WATCHDOG)
async def test_classic_matrices(dut):
    """Identity, zeros, consecutive values, and the extremes -128 x -128 and 127 x -128."""
    cfg = load_config()
    L = cfg.lanes
    rng = rng_for("test_classic_matrices")
    for fill in ("identity", "zeros", "consecutive", "extreme", "min"):
        await run_gemms(dut, f"test_classic_matrices[{fill}]", [(2 * L + 1, 2 * L, L + 3)], rng, fill)


@cocotb.test(**WATCHDOG)
async def test_edge_shapes(dut):
    """M = 1, K = 1, N = 1 and sizes that are not multiples of the lane count."""
    cfg = load_config()
    L = cfg.lanes
    rng = rng_for("test_edge_shapes")
    shapes = [(1, 1, 1), (1, 3 * L, L), (5, 1, 2 * L + 1), (L + 1, L - 1, 1), (3, 2 * L + 3, 7)]
    await run_gemms(dut, "test_edge_shapes", shapes, rng)


@cocotb.test(**WATCHDOG)
async def test_utilisation(dut):
    """M = 16 L, K = N = 4 L: loads hidden under compute, the array busy >= 95 % of the cycles
    from the first activation in to the last result out, on the cycle the model predicts."""
    cfg = load_config()
    L = cfg.lanes
    rng = rng_for("test_utilisation")
    M, K, N = 16 * L, 4 * L, 4 * L
    tb = await run_gemms(dut, "test_utilisation", [(M, K, N)], rng)
    span = tb.last_out - tb.first_in + 1
    util = M * K * N / (L * L * span)
    predicted = tb.model_last_out - tb.first_in + 1      # the golden model's last result
    dut._log.info(f"MXM utilisation: {util * 100:.2f} % ({tb.busy} busy of {span} cycles, "
                  f"model predicts {predicted})")
    record_stats("test_utilisation.util", 0, utilisation=util, span=span)
    assert span == predicted, f"span {span} cycles != model's {predicted}"
    assert util >= 0.95, f"utilisation {util:.4f} < 0.95"


@cocotb.test(**WATCHDOG)
async def test_random_sequences(dut):
    """Seeded random tiles: random M, buffers switched or reused, accumulate or overwrite,
    random gaps, reads interleaved; every vector against the model."""
    cfg = load_config()
    L = cfg.lanes
    rng = rng_for("test_random_sequences")
    tb = MxmTB(dut)
    await tb.start()
    sched = Schedule(L)
    lat = cfg.mxm_latency
    for _ in range(24):
        buf = int(rng.integers(0, 2))
        c0 = sched.load(rng.integers(-128, 128, (L, L), dtype=np.int8), buf,
                        earliest=sched.load_free + int(rng.integers(0, 3 * L)))
        M = int(rng.choice([1, 2, L, int(rng.integers(1, 3 * L))]))
        base = int(rng.integers(0, cfg.acc_depth - M))
        sched.stream(rng.integers(-128, 128, (M, L), dtype=np.int8), buf, base,
                     bool(rng.integers(0, 2)), earliest=c0 + 1 + int(rng.integers(0, L)))
        sched.read(list(range(base, base + M)), lat + cfg.acc_visible_delay)
    await tb.run(sched)
    record_stats("test_random_sequences", tb.cycle, vectors=tb.checked)
