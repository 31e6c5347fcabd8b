"""The regression on a Dask cluster (``lpu.tools.executor``): the same jobs, JUnit and exit code
as a local run; a worker killed mid-run loses no job and leaves no simulator; the default
run needs no Dask at all."""

import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from lpu.tools import regression
from lpu.tools.executor import ClusterError, DaskExecutor
from lpu.tools.regression import plan, run_regression

from test_regression import _processes_in


def _cases(path):
    return sorted((c.get("classname"), c.get("name"))
                  for c in ET.parse(path).getroot().iter("testcase"))


def test_default_run_imports_no_dask(tmp_path):
    code = ("import sys, io\n"
            "from lpu.tools import regression\n"
            f"regression.BUILD = __import__('pathlib').Path({str(tmp_path)!r})\n"
            "n = regression.run_regression(regression.plan('tiny', 'mxm', seed=1000), out=io.StringIO())\n"
            "assert n == 0, n\n"
            "bad = [m for m in ('dask', 'distributed') if m in sys.modules]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr


def test_cluster_run_is_the_local_run(monkeypatch, tmp_path, capsys):
    """`--cluster local:2`: same jobs, same JUnit test cases, same progress and exit code."""
    jobs = plan("tiny", "sram", seeds=2) + plan("tiny", "vxm", seed=1000)
    out = {}
    for label, cluster in (("local", None), ("cluster", "local:2")):
        monkeypatch.setattr(regression, "BUILD", tmp_path / label)
        assert run_regression(jobs, cluster=cluster) == 0
        out[label] = capsys.readouterr().out
        assert "TOTAL: 3 jobs, 3 passed, 0 failed" in out[label], out[label]
    assert _cases(tmp_path / "local/sim/results.xml") == _cases(tmp_path / "cluster/sim/results.xml")
    for label in out:
        passes = sorted(line.split()[1:4] for line in out[label].splitlines()
                        if line.startswith("PASS"))
        out[label] = passes
    assert out["local"] == out["cluster"]


def test_bad_cluster_is_one_line(tmp_path):
    for arg, msg in (("local:0", "needs N >= 1"), ("ftp://x", "expected local:N or tcp://"),
                     ("tcp://127.0.0.1:9", "no Dask scheduler at tcp://127.0.0.1:9")):
        r = subprocess.run([sys.executable, "-m", "lpu", "sim", "--config", "tiny", "--test",
                            "mxm", "--cluster", arg], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.splitlines()) == 1, \
            r.stderr
    with pytest.raises(ClusterError):
        DaskExecutor("local:x")


def test_killed_worker_loses_no_job(monkeypatch, tmp_path, capsys):
    """A worker SIGKILLed while simulating: its job is rescheduled once and reported, every
    job ends passed, and no simulator outlives it."""
    from distributed import Client, LocalCluster
    monkeypatch.setattr(regression, "BUILD", tmp_path)
    jobs = plan("tiny", "tile", seeds=4)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40)
    client = Client(cluster)
    try:
        pids = list(client.run(os.getpid).values())
        result = {}
        runner = threading.Thread(target=lambda: result.update(
            failed=run_regression(jobs, cluster=cluster.scheduler_address)))
        runner.start()
        deadline = time.monotonic() + 300
        while not _simulating(tmp_path, pids[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _simulating(tmp_path, pids[0]), "no job ever ran on the first worker"
        os.kill(pids[0], signal.SIGKILL)
        runner.join(timeout=600)
        out = capsys.readouterr().out
        assert result.get("failed") == 0, out
        # the job running on it, and any Dask had already queued there
        assert "RESCHEDULED tile/tiny/seed" in out and "rescheduled: " in out, out
        assert "TOTAL: 4 jobs, 4 passed, 0 failed" in out, out
        tile_tests = sum("tile" in tbs for tbs in regression._testcases().values())
        assert len(_cases(tmp_path / "sim/results.xml")) == 4 * tile_tests
        time.sleep(1)
        assert _processes_in(tmp_path / "sim" / "runs") == [], "a simulator outlived its worker"
    finally:
        client.close()
        cluster.close()


def _simulating(folder, worker_pid):
    """Is a simulator of ``worker_pid`` running in ``folder``?"""
    for pid in _processes_in(folder / "sim" / "runs"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == worker_pid:
            return True
    return False

