"""`lpu serve-sim`: the virtual board. The tile and its serial bridge run in Verilator under
cocotb (``tb/serve_bridge.py``); the bytes of a pseudo-terminal go through the simulated UART
pins. Point ``lpu gemm --backend fpga --port <path>`` at the printed path."""

import sys
import tempfile
import threading
import time
from pathlib import Path

from .simulation import BUILD, kill_all, run_testbench

__all__ = ["serve_sim"]


def serve_sim(config, seconds, out=sys.stdout):
    (BUILD / "sim").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="serve-", dir=BUILD / "sim"))
    pty_file = work / "pty"
    result = {}

    def target():
        result["res"] = run_testbench(
            "bridge", config, seed=0, run_dir=work / "run", timeout=seconds + 120,
            test_module="tb.serve_bridge", log=lambda s: print(s, file=sys.stderr),
            extra_env={"LPU_PTY_FILE": pty_file, "LPU_SERVE_SECONDS": seconds})

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        while not pty_file.exists():
            if not thread.is_alive():
                res = result.get("res")
                print(f"error: the virtual board did not start ({res.message if res else '?'}; "
                      f"log: {work / 'run' / 'sim.log'})", file=sys.stderr)
                return 1
            time.sleep(0.1)
        print(pty_file.read_text().strip(), file=out, flush=True)
        print(f"virtual board ({config.describe()}) serving; Ctrl-C to stop", file=sys.stderr)
        thread.join()
    except KeyboardInterrupt:
        kill_all()
        return 130
    finally:
        kill_all()
    return 0
