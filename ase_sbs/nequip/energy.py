"""A NequIP model as a torch potential E(positions, cell, numbers) (eV), differentiable
twice, for exact Hessian-vector products (``ase_sbs.supercell_explore.channel_curvature``).

The model's own energy network (the function inside NequIP's ``ForceStressOutput``) is
evaluated on the calculator's input dict (its transforms: type mapping, neighbour list,
and for :class:`SBSNequIPCalculator` the SBS fields) with positions and cell replaced by
the given tensors, so E and all its derivatives are the model's (bias included for a
biased wrapper). The neighbour list is taken at the given geometry (edges within r_max
are smooth in the model, so the derivatives at that geometry are exact).
"""

from __future__ import annotations

import torch
from nequip.data import AtomicDataDict


def energy_function(calc):
    """E(positions (N, 3), cell (3, 3), numbers (N,)) -> total energy (eV, scalar tensor)
    of the eager NequIP model of ``calc`` (``NequIPCalculator`` or subclass); None when
    the calculator holds no eager NequIP model (compiled files) or converts units: use
    finite differences then."""
    model = getattr(calc, "model", None)
    inner = getattr(model, "model", None)
    func = getattr(inner, "func", None)
    if func is None or not hasattr(model, "is_graph_model") or not hasattr(calc, "atoms_to_data"):
        return None
    if getattr(calc, "energy_units_to_eV", 1.0) != 1.0 or getattr(calc, "length_units_to_A", 1.0) != 1.0:
        return None  # unit conversions: leave it to finite differences of the calculator's own results
    device = getattr(calc, "device", torch.device("cpu"))

    def energy(positions: torch.Tensor, cell: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        from ase import Atoms

        atoms = Atoms(numbers=numbers.detach().cpu().numpy(), positions=positions.detach().cpu().numpy(),
                      cell=cell.detach().cpu().numpy(), pbc=True)
        data = calc.atoms_to_data(atoms)
        dtype = data[AtomicDataDict.POSITIONS_KEY].dtype
        data[AtomicDataDict.POSITIONS_KEY] = positions.to(device=device, dtype=dtype)
        data[AtomicDataDict.CELL_KEY] = cell.to(device=device, dtype=dtype).reshape(1, 3, 3)
        for key in (AtomicDataDict.EDGE_VECTORS_KEY, AtomicDataDict.EDGE_LENGTH_KEY):
            data.pop(key, None)
        out = func(data)
        return out[AtomicDataDict.TOTAL_ENERGY_KEY].sum().to(positions.dtype).to(positions.device)

    return energy


__all__ = ["energy_function"]
