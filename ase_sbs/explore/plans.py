"""Targets -> relaxation jobs: one per SBS member (and sign), each in the smallest cell
its symmetry allows, with λ₀ from the seed force.

For member j of B(K) with stabilizer K_j = g_j K g_j⁻¹: the setting's cell is folded by
the pure translations of K_j (:mod:`ase_sbs.setting.cells`), the object is b_j (global)
or its rows on the folded atoms (per atom), the forces and stress are symmetrized onto
K_j acting on the folded cell, and λ₀ makes the largest bias force at the parent equal
to ``seed_force`` (for a strain-only channel the largest bias stress times V/N). −b_j
breaks to the same K_j; when it is not in B it is another domain of the order parameter
(elongation against compression along one axis) and is relaxed too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..bias.descriptor import BiasDescriptor, evaluate_bias
from ..core.groups import mask_of
from ..relax.jobs import RelaxJob, Stage
from ..sbs.sets import SymmetryBreakingSet
from ..setting.cells import FoldedCell, fold, fold_hessian, fold_setting, folded_symmetrizer
from ..setting.setting import Setting
from .results import ExploreSettings


@dataclass
class MemberPlan:
    """One member's relaxation before it runs."""

    target: str
    target_elements: tuple
    member: int
    sign: int
    irreps: str
    channels: list
    cell_multiplication: int
    folded: FoldedCell
    stabilizer: int
    b: np.ndarray
    descriptor: BiasDescriptor
    lam0: float

    @property
    def active(self) -> bool:
        return self.lam0 > 0.0


def bias_scale(atoms: Atoms, b, irreps: str, descriptor: BiasDescriptor) -> float:
    """Largest generalized bias force at λ = 1: max(|F|, |σ| V / N) in eV/Å."""
    r = evaluate_bias(atoms, b, irreps, 1.0, descriptor)
    m = float(np.abs(r.forces).max())
    if atoms.pbc.all():
        m = max(m, float(np.abs(r.stress).max()) * atoms.get_volume() / len(atoms))
    return m


def member_plans(setting: Setting, B: SymmetryBreakingSet, s: ExploreSettings, descriptors: dict) -> list[MemberPlan]:
    """Plans of the members to relax: every member with ``all_variants``, else member 0,
    each with both signs when −b is not in B. ``descriptors`` shares one descriptor per
    irreps (same seed, same descriptor)."""
    desc = descriptors.get(B.irreps)
    if desc is None:
        desc = descriptors[B.irreps] = BiasDescriptor(B.irreps)
    signs = (1,) if B.contains(-B.objects[0]) else (1, -1)
    members = range(len(B)) if s.all_variants else [0]
    plans = []
    for sign in signs:
        for j in members:
            mask = mask_of(B.stabilizers[j])
            folded = fold_setting(setting, mask) if s.fold_cells else fold(setting.atoms, np.zeros((1, 3)))
            b = sign * B.objects[j]
            if B.per_atom:
                b = b[folded.representatives]
            scale = bias_scale(folded.atoms, b, B.irreps, desc)
            plans.append(MemberPlan(
                target=B.target.name, target_elements=B.target.elements, member=j, sign=sign, irreps=B.irreps,
                channels=list(B.target.channels), cell_multiplication=B.target.cell_multiplication,
                folded=folded, stabilizer=mask, b=b, descriptor=desc,
                lam0=s.seed_force / scale if scale > 1e-9 else 0.0))
    return plans


def member_job(setting: Setting, plan: MemberPlan, s: ExploreSettings, hessian: np.ndarray | None = None) -> RelaxJob:
    """The stages of a member's relaxation (seed, field ramp, anneal, release) as a job.
    ``hessian``: the Hessian at the setting's structure (the level's reference), BFGS's
    initial Hessian in the member's folded cell; every stage goes on from the previous
    stage's Hessian."""
    stages = [Stage(plan.lam0 * f, s.fmax, s.max_steps) for f in s.factors]
    stages.append(Stage(0.0, s.release_fmax, s.max_steps))
    H0 = None if hessian is None else fold_hessian(hessian, plan.folded, setting.periodic)
    return RelaxJob(plan.folded.atoms.copy(), stages, cell=s.cell, sbs_object=plan.b, irreps=plan.irreps,
                    descriptor=plan.descriptor, symmetrizer=folded_symmetrizer(setting, plan.stabilizer, plan.folded),
                    snapshots=s.mode == "field", hessian=H0, keep_hessian=True)
