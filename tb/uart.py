"""A UART on the testbench side of the board's ``rx``/``tx`` pins (8N1, ``divisor`` clock
cycles per bit). One Timer per bit: Python wakes ten times per byte, not every cycle."""

import cocotb
from cocotb.triggers import FallingEdge, Timer

from tb.common import CLOCK_NS


class UartPort:
    def __init__(self, dut, divisor):
        self.dut = dut
        self.bit_ns = divisor * CLOCK_NS
        self.received = bytearray()
        dut.rx.value = 1
        self._task = cocotb.start_soon(self._receive())

    async def send(self, data):
        for byte in bytes(data):
            bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1]
            for b in bits:
                self.dut.rx.value = b
                await Timer(self.bit_ns, unit="ns")

    async def idle(self, byte_times):
        self.dut.rx.value = 1
        await Timer(self.bit_ns * 10 * byte_times, unit="ns")

    async def _receive(self):
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ns * 3 // 2, unit="ns")      # middle of data bit 0
            byte = 0
            for i in range(8):
                byte |= int(self.dut.tx.value) << i
                await Timer(self.bit_ns, unit="ns")
            self.received.append(byte)                          # now in the stop bit

    def take(self):
        data = bytes(self.received)
        self.received.clear()
        return data
