"""lpu-cosim: configuration, ISA, compiler, runtime, simulation flow and CLI of the LPU tile."""
