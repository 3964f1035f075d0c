"""Relaxations: jobs and stages, and two runners with one interface, ASE (one structure
at a time) and the batched engine (every structure together in torch)."""

from .ase_runner import ASERunner
from .engine import CPU_BATCH_ATOMS, BatchLimits, Engine
from .jobs import RelaxJob, RelaxResult, Stage
from .optimizers import BFGSParams, FireParams

__all__ = ["ASERunner", "Engine", "BatchLimits", "CPU_BATCH_ATOMS", "RelaxJob", "RelaxResult", "Stage",
           "FireParams", "BFGSParams"]
