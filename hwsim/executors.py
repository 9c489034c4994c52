"""Where sweep tasks run: a local process pool or a Dask distributed cluster.

A task has ``graph_keys`` (the traced graphs its simulation points need; None for a training
group) and is run by ``run(task, graphs, checkpoints) -> rows`` (``graphs``: by graph key).
Both executors yield ``(task, rows)`` as tasks finish, so the caller appends rows as they come.
"""

import concurrent.futures as cf
import multiprocessing
import os

CONNECT_TIMEOUT = "10s"  # to a Dask scheduler given by address
_WORKER_GRAPHS: dict = {}  # a pool worker's traced graphs, by graph key


def _init_worker(graphs: dict, threads: int) -> None:
    import torch

    _WORKER_GRAPHS.update(graphs)
    torch.set_num_threads(threads)


def _run_local(run, task, checkpoints: str) -> list[dict]:
    return run(task, _WORKER_GRAPHS, checkpoints)


def local_results(run, tasks, graphs: dict, checkpoints: str, workers: int):
    """Yield ``(task, run(task, graphs, checkpoints))`` as tasks finish, on a process pool of
    ``workers`` (in this process for one)."""
    if workers == 1:
        _WORKER_GRAPHS.update(graphs)
        for task in tasks:
            yield task, _run_local(run, task, checkpoints)
        return
    # fork: the workers inherit the traced graphs and the imported modules without pickling.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    with cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                initargs=(graphs, threads)) as pool:
        futures = {pool.submit(_run_local, run, task, checkpoints): task for task in tasks}
        try:
            for future in cf.as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def dask_results(run, tasks, graphs: dict, checkpoints: str, workers: int,
                 scheduler: str | None, train_resource: str | None):
    """Like ``local_results`` on a Dask cluster: the one at ``scheduler``, else a local one of
    ``workers``. Graphs are broadcast to every worker once. On a given cluster, training tasks
    (``graph_keys`` None) ask for one unit of ``train_resource`` when it is set."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError("--executor dask needs Dask distributed: pip install 'hwsim[dask]'"
                         ) from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a malformed address
            raise ValueError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler "
                             f"({' '.join(str(exc).split())[:120]})") from None
    else:  # this machine's own cluster: any worker may train
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        train_resource = None
    try:
        needs_resource = train_resource and any(t.graph_keys is None for t in tasks)
        if needs_resource:
            offered = [w.get("resources", {}).get(train_resource, 0)
                       for w in client.scheduler_info()["workers"].values()]
            if not any(offered):
                raise ValueError(f"no Dask worker offers the {train_resource} resource the "
                                 f"training points need; start workers with --resources "
                                 f"{train_resource}=1 or pass --train-resource none")
        remote = client.scatter(graphs, broadcast=True) if graphs else {}
        futures = {}
        for task in tasks:
            training = task.graph_keys is None
            resources = {train_resource: 1} if training and train_resource else None
            # Dask hands the task the graphs behind the futures in this dict.
            needed = {key: remote[key] for key in task.graph_keys or ()}
            future = client.submit(run, task, needed, checkpoints, resources=resources,
                                   pure=False)
            futures[future] = task
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
