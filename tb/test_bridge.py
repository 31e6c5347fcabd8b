"""The serial host bridge (tile + bridge, ``rtl/board.py``) through its UART pins.

Good frames do what they say; corrupted, truncated, unknown and oversized frames get the
right error reply, change nothing, and leave the bridge answering the next frame; seeded
random corruption never hangs it.
"""

import struct

import cocotb
import numpy as np

from lpu.contract.protocol import SYNC_REQ, Cmd, Status, frame, parse_reply
from rtl.board import SIM_DIVISOR
from lpu.contract.isa import Insn, Op, Region, encode
from tb.coverage import sample_status
from tb.common import TB, WATCHDOG, pack, unpack, rng_for, record_stats
from model.tile import schedule
from tb.uart import UartPort

BYTE_TIMES = 10


class BridgeTB(TB):
    def __init__(self, dut):
        super().__init__(dut)
        self.uart = UartPort(dut, SIM_DIVISOR)
        self.hb = self.config.host_data_bits // 8
        self.timeout_bytes = 64           # LpuBoard's default: 64 byte times of silence

    async def start(self):
        await self.reset([self.dut.rx])
        self.dut.rx.value = 1

    async def transact(self, raw, max_bytes=None):
        """Send raw bytes; return (status, payload) of the one reply they provoke."""
        self.uart.take()
        await self.uart.send(raw)
        got = b""
        waited = 0
        limit = (self.timeout_bytes + 2 * self.hb + 40) * 2
        while True:
            await self.uart.idle(2)
            waited += 2
            got += self.uart.take()
            r = parse_reply(got)
            if r is not None:
                status, payload, used = r
                assert used == len(got), f"extra bytes after the reply: {got[used:].hex()}"
                sample_status(self.config, status)
                return status, payload
            assert waited < limit, f"no reply within {limit} byte times (got {got.hex()})"

    async def request(self, cmd, payload=b""):
        return await self.transact(frame(SYNC_REQ, cmd, payload))

    async def write(self, region, bank, addr, part, value):
        data = int(value).to_bytes(self.hb, "little")
        return await self.request(Cmd.WRITE, bytes([region, bank]) + struct.pack("<H", addr) +
                                  bytes([part]) + data)

    async def read(self, region, bank, addr):
        status, payload = await self.request(Cmd.READ, bytes([region, bank]) + struct.pack("<H", addr))
        assert status == Status.OK, f"READ answered {Status.NAMES.get(status)}"
        return int.from_bytes(payload, "little")


@cocotb.test(**WATCHDOG)
async def test_good_frames(dut):
    """INFO describes the configuration; WRITE then READ round-trips SRAM words; STATUS idle."""
    tb = BridgeTB(dut)
    await tb.start()
    cfg = tb.config
    rng = rng_for("test_good_frames")
    status, info = await tb.request(Cmd.INFO)
    assert status == Status.OK
    assert info[0] == cfg.lanes and info[1] == cfg.banks and info[4] == tb.hb, info
    words = {}
    for _ in range(6):
        bank, addr = int(rng.integers(0, cfg.banks)), int(rng.integers(0, cfg.depth))
        w = rng.integers(-128, 128, cfg.lanes)
        assert (await tb.write(Region.SRAM, bank, addr, 0, pack(w, 8)))[0] == Status.OK
        words[(bank, addr)] = w
    for (bank, addr), w in words.items():
        got = unpack(await tb.read(Region.SRAM, bank, addr), 8, cfg.lanes)
        np.testing.assert_array_equal(got, w)
    status, payload = await tb.request(Cmd.STATUS)
    assert status == Status.OK and payload[0] == 0, payload
    record_stats("test_good_frames", 0, words=len(words))


@cocotb.test(**WATCHDOG)
async def test_bad_frames(dut):
    """Each malformed frame gets its error, writes nothing, and the next frame works."""
    tb = BridgeTB(dut)
    await tb.start()
    cfg = tb.config
    marker = pack(np.arange(cfg.lanes) - 3, 8)
    assert (await tb.write(Region.SRAM, 1, 5, 0, marker))[0] == Status.OK
    good = frame(SYNC_REQ, Cmd.WRITE, bytes([Region.SRAM, 1, 5, 0, 0]) + bytes(tb.hb))
    flipped = bytearray(good)
    flipped[7] ^= 0x10                                         # a data bit: CRC must catch it
    cases = [
        ("bad CRC", bytes(flipped), Status.BAD_CRC),
        ("unknown command", frame(SYNC_REQ, 0x7E), Status.UNKNOWN_CMD),
        ("wrong length for WRITE", frame(SYNC_REQ, Cmd.WRITE, bytes(7)), Status.BAD_LENGTH),
        ("READ with a payload too short", frame(SYNC_REQ, Cmd.READ, bytes(2)), Status.BAD_LENGTH),
        ("oversized frame", bytes([SYNC_REQ, Cmd.WRITE]) + struct.pack("<H", 5000) + bytes(20),
         Status.BAD_LENGTH),
        ("truncated frame", good[:len(good) // 2], Status.TIMEOUT),
        ("truncated header", good[:2], Status.TIMEOUT),
    ]
    for name, raw, want in cases:
        dut._log.info(f"bad frame case: {name}")
        status, _ = await tb.transact(raw)
        assert status == want, f"{name}: reply '{Status.NAMES.get(status)}', expected '{Status.NAMES[want]}'"
        got = await tb.read(Region.SRAM, 1, 5)
        assert got == marker, f"{name}: SRAM changed by a rejected frame"
    # noise outside frames is ignored
    await tb.uart.send(bytes([0x00, 0xFF, 0x13]))
    status, info = await tb.request(Cmd.INFO)
    assert status == Status.OK and info[0] == cfg.lanes
    record_stats("test_bad_frames", 0)


@cocotb.test(**WATCHDOG)
async def test_random_corruption(dut):
    """Seeded random bit flips, drops and truncations of valid frames: every frame gets one
    reply (OK only when the frame survived intact), and the bridge never hangs."""
    tb = BridgeTB(dut)
    await tb.start()
    cfg = tb.config
    rng = rng_for("test_random_corruption")
    for i in range(25):
        addr = int(rng.integers(0, cfg.depth))
        value = pack(rng.integers(-128, 128, cfg.lanes), 8)
        good = frame(SYNC_REQ, Cmd.WRITE, bytes([Region.SRAM, 2]) + struct.pack("<H", addr) +
                     bytes([0]) + value.to_bytes(tb.hb, "little"))
        raw = bytearray(good)
        kind = rng.integers(0, 3)
        if kind == 0:
            pos = int(rng.integers(1, len(raw)))
            raw[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            del raw[int(rng.integers(1, len(raw)))]
        else:
            raw = raw[:int(rng.integers(1, len(raw)))]
        before = await tb.read(Region.SRAM, 2, addr)
        status, _ = await tb.transact(bytes(raw))
        after = await tb.read(Region.SRAM, 2, addr)
        if status == Status.OK:
            assert after == value, f"case {i}: OK reply but the word was not written"
        else:
            assert after == before, f"case {i}: rejected frame ({Status.NAMES.get(status)}) changed SRAM"
        status, _ = await tb.request(Cmd.STATUS)
        assert status == Status.OK, f"case {i}: bridge did not recover"
    record_stats("test_random_corruption", 0)


@cocotb.test(**WATCHDOG)
async def test_busy(dut):
    """While a program runs, START, READ and WRITE are answered BUSY and change nothing
    (as many of them as fit in the program's run, which the model's schedule predicts);
    after the program, the same WRITE is done."""
    tb = BridgeTB(dut)
    await tb.start()
    cfg = tb.config
    byte = BYTE_TIMES * SIM_DIVISOR                  # cycles per byte on the line
    program = [Insn(Op.VX, bank=0, count=cfg.acc_depth, quant=1)
               for _ in range(min(cfg.imem_depth - 1, 8000 // (cfg.acc_depth * cfg.vxm_passes) + 1))]
    program.append(Insn(Op.HALT))
    budget = schedule(program, cfg).cycles - 10 * byte      # minus START's reply, a margin
    for pc, insn in enumerate(program):
        assert (await tb.write(Region.IMEM, 0, pc, 0, encode(insn)))[0] == Status.OK
    marker = pack(np.arange(cfg.lanes) + 1, 8)
    assert (await tb.write(Region.SRAM, 3, 7, 0, 0))[0] == Status.OK
    requests = [(Cmd.START, b""),
                (Cmd.READ, bytes([Region.SRAM, 3]) + struct.pack("<H", 7)),
                (Cmd.WRITE, bytes([Region.SRAM, 3]) + struct.pack("<H", 7) + bytes([0]) +
                 marker.to_bytes(tb.hb, "little"))]
    assert (await tb.request(Cmd.START))[0] == Status.OK
    refused = []
    for cmd, payload in requests:
        cost = (len(payload) + 6 + 6 + tb.hb) * byte        # frame and the longest reply
        if cost > budget:
            break
        budget -= cost
        refused.append((cmd, (await tb.request(cmd, payload))[0]))
    assert refused, "the program is too short to send any request while it runs"
    assert all(s == Status.BUSY for _, s in refused), \
        f"while busy: {[(c, Status.NAMES.get(s)) for c, s in refused]}, expected BUSY each"
    for _ in range(1000):
        status, payload = await tb.request(Cmd.STATUS)
        if payload[0] == 0:
            break
    assert payload == bytes([0, 1]), f"program did not finish: STATUS {payload.hex()}"
    assert await tb.read(Region.SRAM, 3, 7) == 0, "a WRITE refused as BUSY changed SRAM"
    assert (await tb.write(Region.SRAM, 3, 7, 0, marker))[0] == Status.OK
    assert await tb.read(Region.SRAM, 3, 7) == marker
    record_stats("test_busy", 0, refused=len(refused))
