"""Developer tooling: Verilog generation and the simulation build cache, the regression
(``make sim``), lint, benchmarks, FPGA builds and the virtual board."""
