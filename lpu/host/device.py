"""The tile behind its serial bridge, as a :class:`lpu.contract.hostport.Device` (the
golden model's operations). The transport is any object with ``write(bytes)`` and
``read(n)``: pyserial on a real board, or the virtual board's pseudo-terminal
(``lpu serve-sim``)."""

import time

from ..contract.hostport import HostPort
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
        self.port = HostPort(config)
        self.run_timeout = run_timeout
        try:
            info = self.client.info()
        except ProtocolError as e:
            raise DeviceError(f"no LPU bridge answering on the port: {e}") from None
        want = (config.lanes, config.banks, config.addr_bits, config.acc_addr_bits, self.hb)
        if tuple(info[:5]) != want:
            raise DeviceError(f"the board's tile (lanes={info[0]}, banks={info[1]}) does not "
                              f"match the configuration (lanes={config.lanes}, banks={config.banks})")

    def _write(self, accesses):
        for a in accesses:
            self.client.write(a.region, a.bank, a.addr, a.part, a.value)

    def _read(self, accesses):
        return [self.client.read(a.region, a.bank, a.addr) for a in accesses]

    def write_sram(self, bank, addr, words):
        self._write(self.port.sram_writes(bank, addr, words))

    def read_sram(self, bank, addr, count):
        return self.port.sram_words(self._read(self.port.sram_reads(bank, addr, count)))

    def write_params(self, row, params):
        self._write(self.port.param_writes(row, params))

    def run(self, program):
        self._write(self.port.program_writes(program))
        self.client.start()
        deadline = time.monotonic() + self.run_timeout
        pause = 0.001
        while True:
            busy, done = self.client.status()
            if done and not busy:
                break
            if time.monotonic() > deadline:
                raise DeviceError(f"program still running after {self.run_timeout} s")
            time.sleep(pause)                   # back off: a long program needs few polls
            pause = min(2 * pause, 0.1)
        return self.port.counters(self._read(self.port.counter_reads()))
