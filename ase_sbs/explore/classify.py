"""Relaxed structures -> what they are: space group over a tolerance ladder, whether a
relaxation broke the symmetry or returned to the parent, distinct phases, and each
phase's domain variants in the setting's cell.

A relaxation ends ``returned`` when it is back in the parent's group, or within
``energy_tol`` of the parent's energy with residual displacements below 0.01 Å and
strains below 2·10⁻³ (a stable channel relaxes back slowly along soft directions: such
a residue is the parent, not a new phase), every stage having converged; ``broken`` when
it ended converged anywhere else; otherwise ``unconverged``. Relaxed structures that are
one phase are merged by one rule (:func:`one_phase`) everywhere.

Variants. A phase in the setting's cell is a distortion q = (u, ε) of the setting's
structure (displacements u, uniform translation removed, and the symmetric strain ε);
G acts on it as (g·u)_{π(i)} = R u_i, ε ↦ R ε Rᵀ. Its stabilizer K' in G (within
``tol``) fixes the number of domain variants, [G:K'], and the images g·X of the phase
under coset representatives g are the variants.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import reduce

import numpy as np
from ase import Atoms

from ..core.groups import bits
from ..core.symmetry import Symmetry, detect_symmetry
from ..errors import SBSInputError
from ..setting.setting import Setting

CLASSIFY_LADDER = (1e-5, 1e-4, 1e-3, 1e-2)


def formula_units(atoms: Atoms) -> int:
    """Formula units in a structure: the gcd of its species counts."""
    counts = np.unique(atoms.numbers, return_counts=True)[1]
    return int(reduce(math.gcd, counts.tolist()))


def max_displacement(parent: Atoms, final: Atoms) -> float:
    """Largest atomic displacement (Å) between two structures with the same atom order,
    uniform translation removed."""
    if parent.pbc.all():
        d = final.get_scaled_positions(wrap=False) - parent.get_scaled_positions(wrap=False)
        d -= np.round(d)
        disp = d @ np.asarray(final.cell)
    else:
        disp = (final.positions - final.get_center_of_mass()) - (parent.positions - parent.get_center_of_mass())
    disp -= disp.mean(axis=0)
    return float(np.linalg.norm(disp, axis=1).max())


def max_strain(parent: Atoms, final: Atoms) -> float:
    """Largest component of the symmetric strain taking the parent cell to the final one."""
    if not parent.pbc.all():
        return 0.0
    F = np.linalg.solve(np.asarray(parent.cell), np.asarray(final.cell)).T
    eps = (F + F.T) / 2 - np.eye(3)
    return float(np.abs(eps).max())


def classify(atoms: Atoms, symprec: float) -> tuple[Symmetry, dict]:
    """(symmetry at ``symprec``, {tolerance: space group or point group} over the ladder)."""
    ladder = {}
    chosen = None
    for sp in CLASSIFY_LADDER:
        try:
            s = detect_symmetry(atoms, symprec=sp)
        except SBSInputError:
            ladder[f"{sp:g}"] = None
            continue
        ladder[f"{sp:g}"] = s.spacegroup_symbol if s.periodic else s.schoenflies
        if sp == symprec:
            chosen = s
    if chosen is None:
        chosen = detect_symmetry(atoms, symprec=symprec)
    return chosen, ladder


def group_name(sym: Symmetry) -> str:
    return sym.spacegroup_symbol if sym.periodic else sym.schoenflies


def relaxation_status(start: Atoms, final: Atoms, found: Symmetry, found_order: int, reference_number: int | None,
                      reference_order: int, energy_per_atom: float, reference_energy_per_atom: float,
                      converged: bool, energy_tol: float, every_stage_converged: bool | None = None) -> str:
    """``broken``, ``returned`` or ``unconverged`` (module docstring): back in the
    reference's group (space-group number and crystal point-group order), or a residue
    at its energy, is ``returned``. Evidence, not hope: ``broken`` needs the last stage
    converged (a stationary point of the unbiased potential off the reference);
    ``returned`` needs every stage converged (``every_stage_converged``), since a biased
    stage that ran out of steps near the reference proves nothing about the channel."""
    same_group = found.spacegroup_number == reference_number and found_order == reference_order
    back = same_group or (abs(energy_per_atom - reference_energy_per_atom) < energy_tol
                          and max_displacement(start, final) < 0.01 and max_strain(start, final) < 2e-3)
    if not converged:
        return "unconverged"
    if back:
        return "returned" if (converged if every_stage_converged is None else every_stage_converged) \
            else "unconverged"
    return "broken"


def cell_multiplication(found: Symmetry, parent_primitive_atoms: int) -> int:
    """Primitive parent cells in the primitive cell of a found structure."""
    primitive = len(found.atoms) / max(len(found.centering_translations), 1)
    return int(round(primitive / parent_primitive_atoms))


Distortion = tuple[np.ndarray, np.ndarray]  # (u, ε): displacements (n, 3) in Å and the strain (3, 3)


def distortion(setting: Setting, structure: Atoms) -> Distortion:
    """(u, ε) of ``structure`` (the setting's atoms in order, any strained cell) against
    the setting's structure: u in Å in the setting's axes, uniform translation removed."""
    ref = setting.atoms
    if setting.periodic:
        L0 = np.asarray(ref.cell)
        L = np.asarray(structure.cell)
        F = np.linalg.solve(L0, L).T
        eps = (F + F.T) / 2 - np.eye(3)
        d = structure.positions @ np.linalg.inv(L) - ref.positions @ np.linalg.inv(L0)
        u = (d - np.round(d)) @ L0
    else:
        eps = np.zeros((3, 3))
        u = (structure.positions - structure.get_center_of_mass()) - (ref.positions - ref.get_center_of_mass())
    return u - u.mean(axis=0), eps


def elements_mapping(setting: Setting, onto: Distortion, moved: Distortion, tol: float) -> Iterator[int]:
    """The elements g of G, in order, that map the distortion ``moved`` = (u, ε) onto
    ``onto`` within ``tol`` Å: every atom of g·u within ``tol`` of the other's, and
    R ε Rᵀ within ``tol`` divided by the cell's largest length. Both are distortions of
    the setting's atoms (:func:`distortion`)."""
    (u_onto, eps_onto), (u_moved, eps_moved) = onto, moved
    scale = max(setting.atoms.cell.lengths()) if setting.periodic else 0.0
    for g in range(setting.order):
        R = setting.rotations[g]
        if np.abs(R @ eps_moved @ R.T - eps_onto).max() * scale > tol:
            continue
        if np.abs(setting.act(g, u_moved) - u_onto).max() <= tol:
            yield g


def stabilizer(setting: Setting, structure: Atoms, tol: float) -> int:
    """The subgroup of G that maps the distortion of ``structure`` onto itself within
    ``tol`` Å (strain counted as ε times the cell's largest length), as a bitmask (the
    group generated, should the tolerance leave a set that is not closed)."""
    d = distortion(setting, structure)
    return setting.group.generate(list(elements_mapping(setting, d, d, tol)))


def same_phase(setting: Setting, a: Atoms, b: Atoms, tol: float) -> bool:
    """True when the distortions of ``a`` and ``b`` (both in the setting's cell, its atoms
    in order) are one G-orbit within ``tol`` Å: some g maps b's onto a's, every atom and
    the strain (times the cell's largest length) within ``tol``. It tells apart phases
    better than space groups where a relaxation ends a little off a higher symmetry."""
    mapping = elements_mapping(setting, distortion(setting, a), distortion(setting, b), tol)
    return next(mapping, None) is not None


MERGE_TOL = 0.03  # Å: two relaxed structures this close (modulo G) at one energy are one phase
NAME_TOL = CLASSIFY_LADDER[-1]  # Å: the loosest rung of the ladder (see one_phase)


def one_phase(setting: Setting, a: Atoms, ra, b: Atoms, rb, energy_tol: float, tol: float = MERGE_TOL) -> bool:
    """The one rule that makes two relaxed structures one phase, in an exploration and in a
    cascade alike: energies per atom within ``energy_tol`` (eV), and

    - the same space group and cell multiplication, or
    - distortions one G-orbit within ``tol`` Å (:func:`same_phase`), or
    - the same space group at :data:`NAME_TOL` (the loosest rung of the classification
      ladder; with the release criterion of 5·10⁻⁴ eV/Å a mode stiffer than 0.05 eV/Å²
      is left less than 0.01 Å from its minimum), which joins the same structure reached
      in cells or variants that G does not relate.

    A relaxation inside a subgroup that ends a hair off a higher-symmetry phase is that
    phase; callers name the merged phase by its most symmetric member. ``a`` and ``b``
    are in the setting's cell, its atoms in order; ``ra`` and ``rb`` carry
    ``energy_per_atom`` (eV), ``spacegroup_number``, ``cell_multiplication``,
    ``point_group`` and ``ladder`` ({tolerance: group}, may be empty)."""
    if abs(ra.energy_per_atom - rb.energy_per_atom) >= energy_tol:
        return False
    same_group = ((ra.spacegroup_number, ra.cell_multiplication, ra.point_group)
                  == (rb.spacegroup_number, rb.cell_multiplication, rb.point_group))
    if same_group:
        return True
    loose = f"{NAME_TOL:g}"
    la, lb = (getattr(r, "ladder", None) or {} for r in (ra, rb))
    if la.get(loose) is not None and la.get(loose) == lb.get(loose):
        return True
    return same_phase(setting, a, b, tol)


def variant_image(atoms: Atoms, parent: Symmetry, op_index: int) -> Atoms:
    """The structure mapped by the parent's operation ``op_index`` (R, t), in a cell
    basis aligned with the parent's."""
    ops = parent.operations
    return image(atoms, ops.rotations[op_index], ops.translations[op_index], parent.atoms.cell)


def image(atoms: Atoms, rotation: np.ndarray, translation: np.ndarray, reference_cell) -> Atoms:
    """The structure mapped by x ↦ R x + t, its cell written in the basis of
    ``reference_cell`` when that basis is a lattice basis of the image."""
    out = atoms.copy()
    out.calc = None
    if atoms.pbc.all():
        out.positions = atoms.positions @ rotation.T + translation
        rotated = np.asarray(atoms.cell) @ rotation.T
        basis = np.round(np.asarray(reference_cell) @ np.linalg.inv(rotated)).astype(int)
        out.set_cell(basis @ rotated if abs(round(np.linalg.det(basis))) == 1 else rotated, scale_atoms=False)
        out.wrap()
    else:
        c = atoms.get_center_of_mass()
        out.positions = (atoms.positions - c) @ rotation.T + c
    return out


def variants(setting: Setting, structure: Atoms, tol: float) -> tuple[int, list[Atoms]]:
    """(number of domain variants [G:K'], one image per coset g K') of a phase given in
    the setting's cell (module docstring)."""
    group = setting.group
    stab = stabilizer(setting, structure, tol)
    seen, images = 0, []
    for g in range(setting.order):
        if seen >> g & 1:
            continue
        for h in bits(stab):
            seen |= 1 << int(group.table[g, h])
        images.append(image(structure, setting.rotations[g], setting.translations[g], setting.atoms.cell))
    return setting.order // bin(stab).count("1"), images


__all__ = ["CLASSIFY_LADDER", "classify", "relaxation_status", "cell_multiplication", "formula_units",
           "max_displacement", "max_strain", "distortion", "stabilizer", "variants", "variant_image", "image",
           "same_phase", "one_phase", "MERGE_TOL", "NAME_TOL", "group_name"]
