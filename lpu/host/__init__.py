"""The host side: the compiler, the devices (golden model, simulation, board), the runtime
that runs a compiled workload on any of them, and the ``lpu`` command."""
