"""lpu-cosim, in three layers a reader meets in this order:

* :mod:`lpu.contract`: configuration, ISA, timing rules, host-port operations, protocol
  (imported by ``rtl/``, ``model/`` and ``tb/``);
* :mod:`lpu.host`: compiler, devices, runtime, the ``lpu`` command;
* :mod:`lpu.tools`: simulation flow, regression, lint, bench, FPGA builds.
"""
