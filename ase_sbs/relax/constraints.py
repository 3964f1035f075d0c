"""Symmetrization as a constraint, as ASE's ``FixSymmetry``: forces and stress projected
onto the symmetric subspace of a job's group K,

    F ↦ (1/|K|) Σ_g g·F,   σ ↦ (1/|K|) Σ_g R_g σ R_gᵀ,

so float32 noise cannot break the symmetry further. One structure: :class:`SymmetryConstraint`,
an ASE constraint (``atoms.set_constraint``) any optimizer and cell filter honour; a batch
of structures with their own groups: :class:`BatchSymmetryConstraint` (the engine's).
Both apply the same index tables (:mod:`ase_sbs.core.symmetrizer`).
"""

from __future__ import annotations

import numpy as np
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from ..core.symmetrizer import BatchSymmetrizer, Symmetrizer


class SymmetryConstraint:
    """ASE constraint: forces and stress symmetrized onto a :class:`Symmetrizer`'s group
    (positions and cell are left to the optimizer, whose steps then keep the symmetry)."""

    def __init__(self, symmetrizer: Symmetrizer):
        self.symmetrizer = symmetrizer

    def adjust_positions(self, atoms, new):
        pass

    def adjust_cell(self, atoms, cell):
        pass

    def adjust_forces(self, atoms, forces):
        forces[:] = self.symmetrizer.forces(forces)

    def adjust_stress(self, atoms, stress):
        full = stress if np.shape(stress) == (3, 3) else voigt_6_to_full_3x3_stress(stress)
        sym = self.symmetrizer.stress(full)
        stress[:] = sym if np.shape(stress) == (3, 3) else full_3x3_to_voigt_6_stress(sym)

    def get_removed_dof(self, atoms):
        return 0

    def index_shuffle(self, atoms, ind):
        raise NotImplementedError("a symmetry constraint does not follow a reordering of the atoms")

    def todict(self):
        return {"name": "SymmetryConstraint", "kwargs": {"operations": len(self.symmetrizer.rotations)}}


class BatchSymmetryConstraint:
    """The constraints of a batch: each structure's forces and stress symmetrized onto its
    own group (None: none), the atoms concatenated in order (``sizes`` atoms each)."""

    def __init__(self, symmetrizers: list, sizes: list[int], device, dtype):
        self._tables = BatchSymmetrizer(symmetrizers, sizes, device, dtype)

    def adjust_forces(self, forces):
        """(N, 3) forces of the whole batch -> symmetrized."""
        return self._tables.forces(forces)

    def adjust_stress(self, stress):
        """(G, 3, 3) stresses -> symmetrized."""
        return self._tables.stress(stress)
