"""Where the regression's jobs run: local processes (the default), or the workers of a Dask
cluster (``make sim CLUSTER=...``, ``lpu sim --cluster ...``).

An executor takes independent calls (a job: build if needed, then simulate) and hands back
each result as it finishes; the regression prints, summarises and writes JUnit from those
results the same way whichever executor ran them.

* :class:`LocalExecutor`: a thread per parallel job, each waiting on its simulator process
  (today's behaviour; imports nothing of Dask).
* :class:`DaskExecutor`: ``local:N`` starts a ``distributed.LocalCluster`` of N single-thread
  worker processes; ``tcp://HOST:8786`` connects a ``distributed.Client`` to a running
  scheduler (``dask scheduler`` / ``dask worker``, or ``dask-jobqueue`` on Slurm/PBS/LSF).
  Workers must see the project at the same path with its ``.venv`` (a shared filesystem, or
  the same checkout on every machine). Builds: by default in the shared ``build/`` (keyed
  by the same hash as locally, under the same file lock, so one worker builds and the others
  reuse); ``builds="worker"`` gives every worker machine its own cache in
  ``$TMPDIR/lpu-cosim-builds`` (for workers without a shared filesystem).

Faults: a job whose worker dies is rescheduled once by Dask (``allowed-failures = 1``) and
reported as rescheduled (the scheduler's count of workers that died under it); a second
death fails the job. A hang is killed by the same wall-clock timeout as locally, on the
worker. Simulators die with their worker (``PR_SET_PDEATHSIG``), and Ctrl-C on the client
cancels every job and kills the simulators on every worker.
"""

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

__all__ = ["LocalExecutor", "DaskExecutor", "make_executor", "ClusterError"]


class ClusterError(ValueError):
    """A bad --cluster value, or a scheduler that cannot be reached."""


class LocalExecutor:
    name = "local"

    def __init__(self, parallel):
        self.parallel = parallel
        self._pool = None

    def map_unordered(self, fn, items):
        """Yield (item, result or exception, info) as each call finishes."""
        self._pool = ThreadPoolExecutor(max_workers=self.parallel)
        futs = {self._pool.submit(fn, it): it for it in items}
        for f in as_completed(futs):
            try:
                yield futs[f], f.result(), {}
            except Exception as e:          # noqa: BLE001 - reported as the job's failure
                yield futs[f], e, {}

    def cancel(self):
        from .simulation import kill_all
        kill_all()
        if self._pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
        kill_all()

    def close(self):
        if self._pool:
            self._pool.shutdown(wait=True)


def _worker_call(fn, item, builds):
    """On a worker: ``fn(item)`` with the build cache the cluster uses."""
    if builds == "worker":
        os.environ["LPU_BUILDS_DIR"] = str(Path(tempfile.gettempdir()) / "lpu-cosim-builds")
    return fn(item)


def _kill_simulators():
    from .simulation import kill_all
    kill_all()
    return True


class DaskExecutor:
    def __init__(self, address, builds="shared"):
        import dask
        from distributed import Client, LocalCluster
        if builds not in ("shared", "worker"):
            raise ClusterError(f"cluster builds '{builds}': choose shared or worker")
        self.builds = builds
        self.cluster = None
        # a job whose worker dies is rescheduled once; a second death fails it
        # (and a worker holds only the job it runs, so a lost worker loses no queued ones)
        dask.config.set({"distributed.scheduler.allowed-failures": 1,
                         "distributed.scheduler.worker-saturation": 1.0})
        if address.startswith("local:"):
            try:
                n = int(address.split(":", 1)[1])
            except ValueError:
                n = 0
            if n < 1:
                raise ClusterError(f"--cluster {address}: local:N needs N >= 1 workers")
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=40)
            self.client = Client(self.cluster)
        elif address.startswith(("tcp://", "tls://", "ws://", "wss://")):
            try:
                self.client = Client(address, timeout=15)
            except OSError as e:
                raise ClusterError(f"no Dask scheduler at {address}: {e}") from None
        else:
            raise ClusterError(f"--cluster {address}: expected local:N or tcp://HOST:PORT")
        self.name = address
        self.parallel = sum(self.client.nthreads().values())
        self._futures = []

    def map_unordered(self, fn, items):
        from distributed import as_completed as dask_completed
        items = list(items)
        futs = [self.client.submit(_worker_call, fn, it, self.builds, pure=False)
                for it in items]
        self._futures = futs
        index = {f.key: i for i, f in enumerate(futs)}
        for f in dask_completed(futs):
            item = items[index[f.key]]
            info = {"rescheduled": self._suspicious(f.key)}
            try:
                yield item, f.result(), info
            except Exception as e:          # noqa: BLE001 - KilledWorker, a job's exception
                yield item, e, info

    def _suspicious(self, key):
        """How many workers died while running this task (Dask's own count)."""
        def count(dask_scheduler, key=key):
            ts = dask_scheduler.tasks.get(key)
            return ts.suspicious if ts is not None else 0
        try:
            return self.client.run_on_scheduler(count)
        except Exception:                   # noqa: BLE001 - the count is informative only
            return 0

    def cancel(self):
        self.client.cancel(self._futures, force=True)
        try:
            self.client.run(_kill_simulators)
        except Exception:                   # noqa: BLE001 - a worker may be gone already
            pass

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(cluster, parallel, builds="shared"):
    """``cluster`` None: local processes; else a Dask executor for it."""
    if not cluster:
        return LocalExecutor(parallel)
    return DaskExecutor(cluster, builds)
