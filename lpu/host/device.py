"""The tile behind its serial bridge, as a device with the same operations as the golden
model's (``model.tile.TileModel``): ``write_sram``, ``read_sram``, ``write_params``,
``run(program) -> counters``. The transport is any object with ``write(bytes)`` and
``read(n)``: pyserial on a real board, or the virtual board's pseudo-terminal
(``lpu serve-sim``)."""

import time

import numpy as np

from ..contract.bits import pack, unpack
from ..contract.isa import COUNTERS, Region, encode, pack_params, param_words
from ..contract.protocol import BridgeClient, ProtocolError

__all__ = ["BridgeDevice", "open_serial", "DeviceError"]



class DeviceError(IOError):
    pass


def open_serial(port, baudrate=115200, timeout=60):
    try:
        import serial
        return serial.Serial(port, baudrate=baudrate, timeout=timeout)
    except Exception as e:       # pyserial raises SerialException, OSError, ValueError
        raise DeviceError(f"cannot open serial port '{port}': {e}") from None


class BridgeDevice:
    def __init__(self, port, config, run_timeout=600):
        self.config = config
        self.hb = config.host_data_bits // 8
        self.client = BridgeClient(port, self.hb)
        self.run_timeout = run_timeout
        try:
            info = self.client.info()
        except ProtocolError as e:
            raise DeviceError(f"no LPU bridge answering on the port: {e}") from None
        want = (config.lanes, config.banks, config.addr_bits, config.acc_addr_bits, self.hb)
        if tuple(info[:5]) != want:
            raise DeviceError(f"the board's tile (lanes={info[0]}, banks={info[1]}) does not "
                              f"match the configuration (lanes={config.lanes}, banks={config.banks})")

    def write_sram(self, bank, addr, words):
        words = np.asarray(words, dtype=np.int8).reshape(-1, self.config.lanes)
        for i, w in enumerate(words):
            self.client.write(Region.SRAM, bank, (addr + i) % self.config.depth, 0, pack(w, 8))

    def read_sram(self, bank, addr, count):
        rows = [unpack(self.client.read(Region.SRAM, bank, (addr + i) % self.config.depth), 8,
                       self.config.lanes) for i in range(count)]
        return np.array(rows, dtype=np.int8).reshape(count, self.config.lanes)

    def write_params(self, row, params):
        cfg = self.config
        packed = pack_params(cfg.lanes, **params)
        for part, word in enumerate(param_words(cfg.lanes, cfg.host_data_bits, packed)):
            self.client.write(Region.PARAM, 0, row, part, word)

    def run(self, program):
        for pc, insn in enumerate(program):
            self.client.write(Region.IMEM, 0, pc, 0, encode(insn))
        self.client.start()
        deadline = time.monotonic() + self.run_timeout
        while True:
            busy, done = self.client.status()
            if done and not busy:
                break
            if time.monotonic() > deadline:
                raise DeviceError(f"program still running after {self.run_timeout} s")
        return {name: self.client.read(Region.COUNTER, 0, i) & 0xFFFFFFFF
                for i, name in enumerate(COUNTERS)}
