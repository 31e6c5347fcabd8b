"""The virtual board's testbench: relays a pseudo-terminal's bytes to and from the UART pins
of the simulated tile + bridge, until $LPU_SERVE_SECONDS have passed. Writes the terminal's
path to $LPU_PTY_FILE once it is ready."""

import fcntl
import os
import time
import tty

import cocotb

from rtl.board import SIM_DIVISOR
from tb.common import TB
from tb.uart import UartPort


@cocotb.test(timeout_time=10**9, timeout_unit="us")
async def serve(dut):
    tb = TB(dut)
    uart = UartPort(dut, SIM_DIVISOR)
    await tb.reset([dut.rx])
    dut.rx.value = 1
    master, slave = os.openpty()
    tty.setraw(slave)
    fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
    path = os.ttyname(slave)
    tmp = os.environ["LPU_PTY_FILE"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(path + "\n")
    os.replace(tmp, os.environ["LPU_PTY_FILE"])
    end = time.monotonic() + float(os.environ.get("LPU_SERVE_SECONDS", "3600"))
    while time.monotonic() < end:
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            data = b""
        if data:
            await uart.send(data)
        else:
            await uart.idle(1)
        out = uart.take()
        if out:
            os.write(master, out)
        elif not data:
            time.sleep(0.0005)          # idle host: do not spin the CPU
