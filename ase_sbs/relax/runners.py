"""Choosing a runner: the batched engine wherever the potential can evaluate batches,
the ASE runner otherwise (a potential that cannot batch gains nothing from the engine)."""

from __future__ import annotations

from ..core.devices import resolve_device
from ..errors import SBSInputError
from ..potentials.batched import batched_potential
from .ase_runner import ASERunner
from .engine import Engine

ENGINES = ("auto", "ase", "batched")


def can_batch(potential, device: str = "cpu") -> bool:
    """True when the potential evaluates whole batches natively (SevenNet, NequIP models
    compiled or packaged for batches), False for the sequential fallback (EMT, any
    other ASE calculator, NequIP models compiled for one frame)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(batched_potential(potential, device=device).batched)


def make_runner(engine, potential, device: str = "cpu", options: dict | None = None):
    """The runner for ``engine``: ``auto`` (batched when the potential can batch, else
    ASE), ``ase``, ``batched``, or a runner object (used as it is)."""
    if not isinstance(engine, str):
        return engine
    if engine not in ENGINES:
        raise SBSInputError(f"engine must be 'batched', 'ase' or 'auto', got {engine!r}")
    device = resolve_device(device)
    if engine == "auto":
        engine = "batched" if can_batch(potential, device) else "ase"
    if engine == "ase":
        return ASERunner(potential, device)
    return Engine(potential, device=device, **{"optimizer": "auto", **(options or {})})
