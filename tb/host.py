"""The tile's host port from the testbench side: a :class:`lpu.contract.hostport.Device`
whose operations are coroutines (same names and arguments as the golden model's).

Used by the top-level testbench, the ``sim`` back end (``tb/run_job.py``) and the benchmark.
Whole programs run with no Python per cycle: after ``start`` the driver waits for ``done``.
"""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from lpu.contract.hostport import HostPort
from model.tile import schedule
from rtl.tile import PROBE_LAYOUT
from tb.common import CLOCK_NS, TB


class Monitor:
    """Cycle (from the first busy cycle) of every event at the unit boundaries, read from the
    tile's probe port through its layout (``rtl.tile.PROBE_LAYOUT``), named as
    ``model.tile.Timing`` names the model's predictions of them."""

    def __init__(self, dut, config, tile=None):
        self.dut = dut
        self.tile = tile            # a chip's tile (its slice of the chip's probe array)
        self.names = [name for name, _ in PROBE_LAYOUT]
        self.events = {name: [] for name in self.names}
        # each event's lag behind the cycle the model predicts
        self.lag = {name: 0 for name in self.names}
        self.lag["vx_reads"] = config.acc_read_latency
        self.link_data = []         # on a lone tile: each vector sent east, as it left
        self._link_out = getattr(dut, "link_out_data", None) if tile is None else None
        self.running = True

    async def watch(self):
        d = self.dut
        k = 0
        while self.running:
            await RisingEdge(d.clk)
            await ReadOnly()
            if int(d.host__busy.value):
                bits = d.probe.value.to_unsigned()
                if self.tile is not None:
                    w = PROBE_LAYOUT.size
                    bits = (bits >> (self.tile * w)) & ((1 << w) - 1)
                probe = PROBE_LAYOUT.from_bits(bits)
                for name in self.names:
                    if getattr(probe, name):
                        self.events[name].append(k - self.lag[name])
                if probe.link_sends and self._link_out is not None:
                    self.link_data.append(self._link_out.value.to_unsigned())
                k += 1


class HostDriver(TB):
    def __init__(self, dut, tile=None):
        super().__init__(dut)
        self.port = HostPort(self.config)
        self.tile = tile            # on a chip: the tile every access goes to

    async def start_clock_and_reset(self):
        d = self.dut
        # every input driven from reset on: an undriven west link is Z, which Icarus (four
        # states) carries into the RX logic as X, where Verilator (two) reads 0
        link = [getattr(d, name) for name in ("link_in_valid", "link_in_data") if hasattr(d, name)]
        await self.reset([d.host__we, d.host__re, d.host__start, *link])
        for sig in (d.host__busy, d.host__done, d.host__rvalid):
            cocotb.start_soon(self._changes_on_rising_edges(sig))

    async def _changes_on_rising_edges(self, sig):
        """The tile is synchronous to the clock's rising edge: its host-port outputs change
        only in that time step. (A register clocked on the falling edge would change half a
        cycle early, which sampling at the rising edge alone cannot see.)"""
        d = self.dut
        while True:
            await sig.value_change
            assert int(d.clk.value) == 1, (
                f"{sig._name} changed to {sig.value} at {get_sim_time('ns')} ns, with the clock "
                f"low: outputs must change only on the rising edge")

    def _select(self):
        if self.tile is not None:
            self.dut.host__tile.value = self.tile

    async def _write(self, accesses):
        d = self.dut
        self._select()
        for a in accesses:
            d.host__we.value = 1
            d.host__region.value = a.region
            d.host__bank.value = a.bank
            d.host__addr.value = a.addr
            d.host__part.value = a.part
            d.host__wdata.value = a.value
            await RisingEdge(d.clk)
        d.host__we.value = 0

    async def _read(self, accesses):
        """Pipelined reads: one address per cycle, data ``host_read_latency`` cycles later."""
        d = self.dut
        lat = self.config.host_read_latency
        self._select()
        accesses = list(accesses)
        out = []
        for i in range(len(accesses) + lat):
            d.host__re.value = int(i < len(accesses))
            if i < len(accesses):
                d.host__region.value = accesses[i].region
                d.host__bank.value = accesses[i].bank
                d.host__addr.value = accesses[i].addr
            await ReadOnly()
            if i >= lat:
                assert int(d.host__rvalid.value) == 1, \
                    f"host read: h_rvalid low {lat} cycles after h_re"
                out.append(d.host__rdata.value.to_unsigned())
            else:
                assert int(d.host__rvalid.value) == 0, "host read: h_rvalid high with no read pending"
            await RisingEdge(d.clk)
        return out

    async def write_sram(self, bank, addr, words):
        await self._write(self.port.sram_writes(bank, addr, words))

    async def read_sram(self, bank, addr, count):
        return self.port.sram_words(await self._read(self.port.sram_reads(bank, addr, count)))

    async def write_params(self, row, params):
        await self._write(self.port.param_writes(row, params))

    async def write_program(self, program):
        await self._write(self.port.program_writes(program))

    async def read_counters(self):
        return self.port.counters(await self._read(self.port.counter_reads()))

    async def start_program(self):
        d = self.dut
        d.host__start.value = 1
        await RisingEdge(d.clk)
        d.host__start.value = 0

    async def run(self, program, max_cycles=None, monitor=False, link_in=()):
        """Load ``program``, start it and wait for ``done`` under a simulated-time limit of
        ``max_cycles`` (default: twice the model's prediction, plus 1000); returns the
        counters. With no Python per cycle, unless ``monitor``: then a :class:`Monitor`
        records every unit-boundary event, in ``self.last_events`` (and what left on the
        east link in ``self.last_link``). ``link_in``: (cycle, packed vector) pairs driven on
        the tile's west link on those cycles of the run."""
        if max_cycles is None:
            arrivals = [c for c, _ in link_in]
            max_cycles = 2 * schedule(program, self.config, arrivals=arrivals).cycles + 1000
        await self.write_program(program)
        mon = Monitor(self.dut, self.config) if monitor else None
        task = cocotb.start_soon(mon.watch()) if mon else None
        await self.start_program()
        if link_in:
            cocotb.start_soon(self._drive_link(sorted(link_in)))
        await with_timeout(RisingEdge(self.dut.host__done), max_cycles * CLOCK_NS, "ns")
        await RisingEdge(self.dut.clk)
        if mon:
            mon.running = False
            await RisingEdge(self.dut.clk)
            task.cancel()
            self.last_events = mon.events
            self.last_link = mon.link_data
        return await self.read_counters()

    async def _drive_link(self, link_in):
        """Started right after the start edge: cycle 0 of the run is the one under way."""
        d = self.dut
        k = 0
        for cycle, value in link_in:
            while k < cycle:
                await RisingEdge(d.clk)
                k += 1
            d.link_in_valid.value = 1
            d.link_in_data.value = value
            await RisingEdge(d.clk)
            k += 1
            d.link_in_valid.value = 0


async def run_chip(dut, cfg, runs, max_cycles, monitor=True):
    """A chip (``rtl.chip.LpuChip``): load every tile's run, start them together, wait for
    done (at most ``max_cycles``), with a monitor per tile if ``monitor``; returns (counters,
    events or None) per tile."""
    from lpu.contract.hostport import load_run
    hosts = [HostDriver(dut, tile=k) for k in range(cfg.tiles)]
    for host, run in zip(hosts, runs):
        await load_run(host, run)
        await host.write_program(run.program)
    monitors = [Monitor(dut, cfg, tile=k) for k in range(cfg.tiles)] if monitor else []
    tasks = [cocotb.start_soon(mon.watch()) for mon in monitors]
    await hosts[0].start_program()
    await with_timeout(RisingEdge(dut.host__done), max_cycles * CLOCK_NS, "ns")
    await RisingEdge(dut.clk)
    for mon in monitors:
        mon.running = False
    if monitors:
        await RisingEdge(dut.clk)
    for t in tasks:
        t.cancel()
    counters = [await host.read_counters() for host in hosts]
    return counters, [mon.events for mon in monitors] if monitor else [None] * cfg.tiles
