"""The `grid` and `compute` commands of `python -m grok_lib`: a grid of runs trained in this process, and a
profile's whole grid trained and measured on a Dask cluster; both write TensorBoard with --tensorboard
(grok_lib.monitor.board)."""

from __future__ import annotations

from .errors import GrokError, require
from .store import RunStore


def cluster_from(args, default_workers: int):
    """The grok_lib.jobs Cluster that the --workers / --scheduler / --slurm-* options describe."""
    from .jobs.cluster import Cluster, Slurm

    slurm = None
    if args.slurm_queue is not None:
        slurm = Slurm(queue=args.slurm_queue, walltime=args.slurm_walltime, cores=args.slurm_cores,
                      memory=args.slurm_memory, jobs=args.slurm_jobs, extra=tuple(args.slurm_extra))
    return Cluster(workers=args.workers if args.workers is not None else default_workers, scheduler=args.scheduler,
                   slurm=slurm)


def compute_command(args, store: RunStore) -> None:
    """`compute`: a profile's grid trained and measured on a Dask cluster (grok_lib.paper.pipeline.compute), then
    what it stored written to TensorBoard (--tensorboard) and its tables exported (--export)."""
    import time

    import torch

    from .monitor.board import StoredBoards
    from .paper.lmn_reproduce import lmn_jobs, notebook_out_dir
    from .paper.pipeline import compute
    from .paper.profiles import get_profile
    from .paper.tables import export_tables

    profile = get_profile(args.profile)
    cluster = cluster_from(args, profile.workers)
    if args.export is not None:  # refused before hours of computing, not after
        existing = next(p for p in [args.export, *args.export.parents] if p.exists())
        require(existing.is_dir(), "export", f"{existing} is a file; --export needs a folder (e.g. results/p113)")
    boards = StoredBoards(args.tensorboard)  # with --tensorboard, its package and folder checked now
    start = time.perf_counter()
    compute(profile, store, extra=lmn_jobs(notebook_out_dir(profile.name), profile.name) if args.lmn else [],
            cluster=cluster)
    wall = time.perf_counter() - start
    print(f"profile {profile.name}: {len(profile.configs())} runs trained and measured in {store.root} ({wall:.0f} s)")
    boards.write([store.run(config) for config in profile.configs()])
    if args.export is not None:
        local = args.scheduler is None and args.slurm_queue is None and cluster.workers == 1
        try:
            out = export_tables(profile, store, args.export, wall_s=wall,
                                threads=torch.get_num_threads() if local else 1)  # Dask workers: one thread
        except OSError as err:
            raise GrokError("export", f"cannot write {args.export} ({err.strerror or err})") from None
        print(f"tables and provenance written to {out}")


def grid_command(args, store: RunStore, configs: list) -> None:
    """`grid`: the runs of `configs` trained here, one at a time or (--ensemble) in one batched step."""
    from .training.ensemble import train_ensemble
    from .training.train import grokking_epochs, train

    if args.tensorboard is not None:  # the monitor's imports (a second) only when asked for
        from .monitor.board import train_grid_with_board

        runs = train_grid_with_board(configs, store, args.tensorboard, args.ensemble, args.device)
    elif args.ensemble:
        runs = train_ensemble(configs, store, device=args.device)
    else:
        runs = [train(config, store, device=args.device) for config in configs]
    for run in runs:
        print(f"{run.path.name:40s} first epochs >= 99%: {grokking_epochs(run.metrics())}")
