"""Jobs and where they run: `runner` (Job, Runner: dependencies first, longest first, results back to one
writer) and `cluster` (in this process, local Dask workers, a running scheduler or Slurm)."""
