// Native Verilator harness for the LPU tile: the ceiling the cocotb flow is measured against.
// Drives the same host port as tb/host.py, from C++, with no VPI and no public signals.
//
// Job file (text): lines of
//   w <region> <bank> <addr> <part> <n> <hex32 word 0 (low)> ... <hex32 word n-1>
//   run <repeats>                 start the program <repeats> times, timing only these runs
//   read <bank> <addr> <count>    read SRAM words back (printed as hex, for verification)
#include "Vtop.h"
#include "verilated.h"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

// Verilator escapes a double underscore in a C++ name: port ``host__re`` is ``host___05Fre``
#define HOST(port) host___05F##port

static Vtop* top;
static uint64_t cycles = 0;

static void tick() {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
    cycles++;
}

template <typename T> static void set_wide(T& sig, const std::vector<uint32_t>& w) {
    const size_t n = sizeof(sig) / sizeof(uint32_t);
    for (size_t i = 0; i < n; i++) sig[i] = i < w.size() ? w[i] : 0;
}

template <typename T> static void print_wide(const T& sig, int words) {
    for (int i = words - 1; i >= 0; i--) printf("%08x", sig[i]);
    printf("\n");
}

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 2) { fprintf(stderr, "usage: harness JOBFILE\n"); return 2; }
    top = new Vtop;
    top->rst = 1; top->HOST(we) = 0; top->HOST(re) = 0; top->HOST(start) = 0;
    tick(); tick();
    top->rst = 0;
    tick();
    std::ifstream in(argv[1]);
    std::string line;
    double seconds = 0;
    uint64_t run_cycles = 0, repeats_done = 0;
    while (std::getline(in, line)) {
        std::istringstream s(line);
        std::string op;
        s >> op;
        if (op == "w") {
            unsigned region, bank, addr, part, n;
            s >> region >> bank >> addr >> part >> n;
            std::vector<uint32_t> words(n);
            for (auto& x : words) s >> std::hex >> x;
            top->HOST(we) = 1; top->HOST(region) = region; top->HOST(bank) = bank;
            top->HOST(addr) = addr; top->HOST(part) = part;
            set_wide(top->HOST(wdata), words);
            tick();
            top->HOST(we) = 0;
        } else if (op == "run") {
            unsigned repeats;
            s >> repeats;
            auto t0 = std::chrono::steady_clock::now();
            uint64_t c0 = cycles;
            for (unsigned r = 0; r < repeats; r++) {
                top->HOST(start) = 1;
                tick();
                top->HOST(start) = 0;
                while (!top->HOST(done)) tick();
            }
            seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            run_cycles += cycles - c0;
            repeats_done += repeats;
        } else if (op == "read") {
            unsigned bank, addr, count;
            s >> bank >> addr >> count;
            for (unsigned i = 0; i < count; i++) {
                top->HOST(re) = 1; top->HOST(region) = 0; top->HOST(bank) = bank; top->HOST(addr) = addr + i;
                tick();
                top->HOST(re) = 0;
                // the word is on rdata with rvalid, the host port's read latency later
                for (int wait = 0; !top->HOST(rvalid); wait++) {
                    if (wait == 16) { fprintf(stderr, "host read: no rvalid\n"); return 1; }
                    tick();
                }
                print_wide(top->HOST(rdata), sizeof(top->HOST(rdata)) / sizeof(uint32_t));
            }
        }
    }
    printf("cycles %llu seconds %.6f repeats %llu\n", (unsigned long long)run_cycles, seconds,
           (unsigned long long)repeats_done);
    top->final();
    delete top;
    return 0;
}
