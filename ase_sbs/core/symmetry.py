"""Atoms -> Symmetry: what the structure's symmetry is, as plain data.

Crystals (``pbc`` all True) go through spglib; molecules (``pbc`` all False) through an
exhaustive search of the orthogonal maps that permute the atoms
(:func:`ase_sbs.core.pointgroups.point_set_group`). Partial periodicity (slabs, wires) is refused: the
layer and rod groups are not handled, and treating a slab as a 3D crystal or a
molecule silently would give the wrong group. Set ``pbc=True`` with vacuum to treat a
slab as a 3D crystal, or ``pbc=False`` for an isolated cluster.

Conventions: ASE cell rows are lattice vectors, so a fractional rotation W maps to
the Cartesian R = Lᵀ W L⁻ᵀ (L the cell with rows as vectors). Operation k maps atom i
onto atom ``permutations[k, i]``: R x_i + t ≡ x_{π(i)} (mod lattice for crystals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from ase import Atoms

from ..errors import SBSInputError
from .groups import FiniteGroup
from .pointgroups import (
    SCHOENFLIES_OF_HM,
    cayley_table,
    collinear,
    hermann_mauguin_name,
    point_set_group,
    refine_group,
    schoenflies_name,
)
from .spglib_adapter import refine_symmetry, symmetry_dataset, symmetry_operations
from .structure import check_structure, species_labels
from .symmetrizer import Symmetrizer


@dataclass(frozen=True, eq=False)
class Operations:
    """Space-group (or molecular point-group) operations x -> R x + t in Cartesian Å.

    ``point_index[k]`` is the index of ``rotations[k]`` in ``Symmetry.point_group_matrices``.
    For crystals ``rotations_frac``/``translations_frac`` are spglib's integer
    rotations and fractional translations; for molecules they are None.
    """

    rotations: np.ndarray  # (m, 3, 3) Cartesian
    translations: np.ndarray  # (m, 3) Cartesian Å
    permutations: np.ndarray  # (m, natoms) int
    point_index: np.ndarray  # (m,) int
    rotations_frac: np.ndarray | None = None
    translations_frac: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rotations)


@dataclass(frozen=True, eq=False)
class Symmetry:
    """The symmetry of one structure.

    Attributes:
        atoms: a copy of the input.
        periodic: True for a crystal, False for a molecule.
        point_group_matrices: (|S|, 3, 3) Cartesian point group S, identity first,
            ordered canonically in ``frame``.
        schoenflies, hermann_mauguin: point-group symbols.
        spacegroup_number, spacegroup_symbol: crystals only (None for molecules).
        operations: all operations with their atom permutations.
        frame: (3, 3) orthonormal; column j is axis j of the structure's canonical
            frame in Cartesian coordinates (:func:`crystal_frame`, :func:`molecule_frame`).
            Defined up to right-multiplication by S, so objects defined in it are
            equivariant once closed under S.
        symprec (Å), angle_tolerance (degrees, -1: spglib default).
        crystal_class: Schoenflies symbol of the crystal's point group (spglib); it
            exceeds ``schoenflies`` when the cell is a supercell that only some
            operations map onto itself (those are the ones kept in ``operations``).
        centering_translations: fractional translations of the pure translations
            among the operations (crystals; [0, 0, 0] for a primitive cell).
        transformation_matrix, origin_shift, std_rotation_matrix: spglib's
            standardization (crystals only): (a_s b_s c_s) = (a b c) P⁻¹, and the
            rotation taking the input to the standardized orientation.
    """

    atoms: Atoms
    periodic: bool
    point_group_matrices: np.ndarray
    schoenflies: str
    hermann_mauguin: str | None
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    operations: Operations
    frame: np.ndarray
    symprec: float
    angle_tolerance: float
    centering_translations: np.ndarray = field(default_factory=lambda: np.zeros((1, 3)))
    crystal_class: str | None = None
    transformation_matrix: np.ndarray | None = None
    origin_shift: np.ndarray | None = None
    std_rotation_matrix: np.ndarray | None = None

    @cached_property
    def point_group(self) -> FiniteGroup:
        return FiniteGroup(cayley_table(self.point_group_matrices))

    @property
    def order(self) -> int:
        return len(self.point_group_matrices)

    def representative_operation(self, point_index: int) -> int:
        """Index of the first operation whose rotation is point-group element ``point_index``."""
        return int(np.flatnonzero(self.operations.point_index == point_index)[0])

    def name(self) -> str:
        if self.periodic and self.crystal_class and self.crystal_class != self.schoenflies:
            return (f"{self.spacegroup_symbol} ({self.spacegroup_number}), crystal class {self.crystal_class}; "
                    f"operations compatible with this cell: {self.hermann_mauguin} ({self.schoenflies})")
        if self.periodic:
            return (f"{self.spacegroup_symbol} ({self.spacegroup_number}), "
                    f"point group {self.hermann_mauguin} ({self.schoenflies})")
        return f"point group {self.schoenflies}" + (f" ({self.hermann_mauguin})" if self.hermann_mauguin else "")


# ----------------------------------------------------------------------------------


def _check_tolerances(symprec: float, angle_tolerance: float) -> None:
    if not (np.isfinite(symprec) and symprec > 0):
        raise SBSInputError(f"symprec must be a positive length in Å, got {symprec}")
    if not (angle_tolerance == -1 or (np.isfinite(angle_tolerance) and angle_tolerance > 0)):
        raise SBSInputError(f"angle_tolerance must be positive degrees or -1, got {angle_tolerance}")


def atom_permutation(atoms: Atoms, R: np.ndarray, t: np.ndarray, tol: float, periodic: bool,
                     labels: np.ndarray | None = None) -> np.ndarray | None:
    """perm[i] = j with R x_i + t ≡ x_j, same species (``labels``, default the atomic
    numbers); None if no bijection.

    For crystals R and t are the fractional (integer) rotation and translation, so a
    lattice that is only nearly symmetric does not inflate the mismatch."""
    if periodic:
        frac = atoms.get_scaled_positions(wrap=False)
        d = (frac @ R.T + t)[:, None, :] - frac[None, :, :]
        diff = (d - np.round(d)) @ np.asarray(atoms.cell)
    else:
        pos = atoms.positions
        diff = (pos @ R.T + t)[:, None, :] - pos[None, :, :]
    dist = np.linalg.norm(diff, axis=2)
    labels = atoms.numbers if labels is None else labels
    dist[labels[:, None] != labels[None, :]] = np.inf
    perm = dist.argmin(axis=1)
    if (dist[np.arange(len(atoms)), perm] > tol).any() or len(set(perm.tolist())) != len(atoms):
        return None
    return perm


def _inconsistent(symprec: float) -> SBSInputError:
    return SBSInputError(
        f"symprec={symprec} Å finds no consistent symmetry (the operations found do not map "
        "the structure onto itself); use a smaller symprec, or symmetrize the structure first"
    )


def _canonical_order(mats: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Order of point-group elements: identity first, then by their matrices in ``frame``."""
    in_frame = np.einsum("ji,njk,kl->nil", frame, mats, frame)
    keys = [tuple(np.round(M, 6).ravel() + 0.0) for M in in_frame]
    order = sorted(range(len(mats)), key=lambda i: (not np.allclose(mats[i], np.eye(3), atol=1e-6), keys[i]))
    return np.array(order)


def _crystal(atoms: Atoms, symprec: float, angle_tolerance: float) -> Symmetry:
    cell = np.asarray(atoms.cell, dtype=float)
    labels = species_labels(atoms)
    ds = symmetry_dataset((cell, atoms.get_scaled_positions(wrap=True), labels), symprec, angle_tolerance)
    W = np.asarray(ds.rotations, dtype=float)
    tf = np.asarray(ds.translations, dtype=float)
    L = cell
    rot_cart = np.einsum("ij,njk,kl->nil", L.T, W, np.linalg.inv(L).T)
    trans_cart = tf @ L
    # point group: distinct Cartesian rotations
    point, point_index = [], []
    for R in rot_cart:
        for p, P in enumerate(point):
            if np.abs(P - R).max() < 1e-6:
                point_index.append(p)
                break
        else:
            point.append(R)
            point_index.append(len(point) - 1)
    point = np.array(point)
    # a lattice symmetric only within symprec gives rotations orthogonal to ~symprec/length
    slack = max(1e-4, 20 * symprec / min(atoms.cell.lengths()))
    if not np.allclose(np.einsum("nij,nkj->nik", point, point), np.eye(3), atol=slack):
        raise _inconsistent(symprec)
    point = refine_group(point, tol=max(1e-3, 5 * slack))
    perms = []
    tol = max(3 * symprec, 1e-3)
    for Wk, tk in zip(W, tf):
        p = atom_permutation(atoms, Wk, tk, tol, periodic=True, labels=labels)
        if p is None:
            raise _inconsistent(symprec)
        perms.append(p)
    # canonical frame: spglib's standardized orientation, turned by the lattice symmetry
    # that the atoms single out (spglib's is fixed only up to the lattice's symmetry)
    u, _, vt = np.linalg.svd(np.asarray(ds.std_rotation_matrix, dtype=float))
    frame = crystal_frame(atoms, labels, (u @ vt).T, np.asarray(ds.std_lattice, dtype=float), point, symprec)
    order = _canonical_order(point, frame)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    point = point[order]
    point_index = rank[np.array(point_index)]
    centering = tf[np.array([np.allclose(w, np.eye(3)) for w in W])]
    operations = Operations(rotations=point[point_index], translations=trans_cart, permutations=np.array(perms),
                            point_index=point_index, rotations_frac=np.asarray(ds.rotations, dtype=int),
                            translations_frac=tf)
    return _symmetry(atoms, point, operations, frame, symprec, angle_tolerance,
                     spacegroup_number=int(ds.number), spacegroup_symbol=str(ds.international),
                     centering_translations=centering,
                     crystal_class=SCHOENFLIES_OF_HM.get(str(ds.pointgroup), schoenflies_name(point)),
                     transformation_matrix=np.asarray(ds.transformation_matrix, dtype=float),
                     origin_shift=np.asarray(ds.origin_shift, dtype=float),
                     std_rotation_matrix=np.asarray(ds.std_rotation_matrix, dtype=float))


def _symmetry(atoms: Atoms, mats: np.ndarray, operations: Operations, frame: np.ndarray, symprec: float,
              angle_tolerance: float, **crystal) -> Symmetry:
    """The Symmetry of ``atoms`` with point group ``mats`` (named here) and ``operations``;
    ``crystal`` holds the space-group fields (none for a molecule)."""
    schoen = schoenflies_name(mats)
    periodic = bool(crystal)
    number, symbol = crystal.pop("spacegroup_number", None), crystal.pop("spacegroup_symbol", None)
    return Symmetry(atoms=atoms.copy(), periodic=periodic, point_group_matrices=mats, schoenflies=schoen,
                    hermann_mauguin=hermann_mauguin_name(schoen), spacegroup_number=number, spacegroup_symbol=symbol,
                    operations=operations, frame=frame, symprec=symprec, angle_tolerance=angle_tolerance, **crystal)


def lattice_point_group(lattice: np.ndarray, symprec: float) -> np.ndarray:
    """Cartesian rotations of the lattice spanned by the rows of ``lattice`` (its holohedry)."""
    rotations, _ = symmetry_operations((lattice, [[0.0, 0.0, 0.0]], [1]), symprec)
    W = np.unique(rotations, axis=0).astype(float)
    mats = np.einsum("ij,njk,kl->nil", lattice.T, W, np.linalg.inv(lattice).T)
    u, _, vt = np.linalg.svd(mats)
    return u @ vt


def _lattice_shifts(cell: np.ndarray, radius: float, offset: float = 0.0) -> np.ndarray:
    """Integer n (rows) covering every n with |(n + d) @ cell| <= radius for some d with
    |d_i| <= offset: |n_i| <= radius |b*_i| + offset."""
    bound = np.floor(radius * np.linalg.norm(np.linalg.inv(cell), axis=0) + offset + 1e-9).astype(int)
    axes = [np.arange(-m, m + 1) for m in bound]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3).astype(float)


def _short_lattice_vectors(cell: np.ndarray) -> np.ndarray:
    """(M, 3) the lattice vectors no longer than the third successive minimum (they
    generate the lattice); ``cell`` Minkowski-reduced, so its longest row is that minimum."""
    radius = np.linalg.norm(cell, axis=1).max() + 1e-6
    vectors = _lattice_shifts(cell, radius) @ cell
    length = np.linalg.norm(vectors, axis=1)
    return vectors[(length > 0) & (length < radius)]


def _shortest_differences(positions: np.ndarray, origin: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """(N, k, 3): for each atom j, the shortest vectors in x_j - origin + lattice (all of
    them when several are equally short; NaN rows pad to k). ``cell`` Minkowski-reduced."""
    d = (positions - origin) @ np.linalg.inv(cell)
    d -= np.round(d)
    # the shortest vector is no longer than d @ cell, which bounds its coefficients
    shifts = _lattice_shifts(cell, np.linalg.norm(d @ cell, axis=1).max() + 1e-6, offset=0.5)
    vectors = (d[:, None, :] + shifts[None]) @ cell
    length = np.linalg.norm(vectors, axis=2)
    tied = length < length.min(axis=1, keepdims=True) + 1e-6
    k = int(tied.sum(axis=1).max())
    order = np.argsort(~tied, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(vectors, order[..., None], axis=1)
    out[~np.take_along_axis(tied, order, axis=1)] = np.nan
    return out


def _quantize(x: np.ndarray, scale: float) -> np.ndarray:
    """x on a grid of step 1/scale whose cell boundaries sit at an irrational offset, so
    that round-number coordinates (half of a 5.8875 Å cell edge) are not on one; NaN
    becomes the largest integer."""
    x = np.asarray(x, dtype=float)
    out = np.floor(np.nan_to_num(x) * scale + 0.6180339887498949).astype(np.int64)
    out[np.isnan(x)] = np.iinfo(np.int64).max
    return out


def _rows(values: np.ndarray) -> tuple:
    """A (n, m) integer array as a tuple of its rows in lexicographic order."""
    return tuple(map(tuple, values[np.lexsort(values.T[::-1])].tolist()))


def crystal_frame(atoms: Atoms, labels: np.ndarray, frame: np.ndarray, std_lattice: np.ndarray,
                  point_group: np.ndarray, symprec: float, decimals: int = 4) -> np.ndarray:
    """Canonical orthonormal frame of a crystal, unique up to its point group S.

    spglib's standardized orientation ``frame`` is unique only up to the symmetry H of
    the lattice (``std_lattice``, rows in that orientation): a mirror image or another
    choice of standard cell gives ``frame`` h with h in H, not always in S (the mirror
    image of a P-6m2, F-43m, P4mm or R3 crystal came back turned by an improper h
    outside S). Frames ``frame`` h of one coset S h are equivalent; among the cosets,
    the frame whose view of the structure is lexicographically smallest wins. The view:
    coordinates (on a 10^-decimals Å grid) of the lattice vectors up to the third
    successive minimum (they generate the lattice), then the species and the shortest
    difference vectors from an origin atom to every atom (the cosets x_j - x_i +
    lattice); origins are the atoms of the rarest species whose sorted distances to all
    atoms are smallest. Two frames with the same view differ by a rotation that maps the
    lattice and those cosets onto themselves, a symmetry of the structure, so the choice
    is equivariant modulo S. ``point_group``: S, Cartesian.
    """
    from ase.geometry import minkowski_reduce

    S = np.einsum("ji,njk,kl->nil", frame, point_group, frame)  # S in the frame
    cosets: list[np.ndarray] = []
    for h in lattice_point_group(std_lattice, symprec):
        if not any(np.abs(S - h @ r.T).max(axis=(1, 2)).min() < 1e-3 for r in cosets):
            cosets.append(h)
    if len(cosets) == 1:  # every lattice symmetry is in S: nothing to choose
        return frame
    cell, _ = minkowski_reduce(np.asarray(atoms.cell, dtype=float))
    lattice = _short_lattice_vectors(cell)
    scale = 10.0**decimals
    counts = {z: int((labels == z).sum()) for z in set(labels.tolist())}
    rarest = min(counts, key=lambda z: (counts[z], z))
    origins, best_key = [], None
    for i in np.flatnonzero(labels == rarest):
        diffs = _shortest_differences(atoms.positions, atoms.positions[i], cell)
        key = tuple(np.sort(_quantize(np.linalg.norm(diffs[:, 0], axis=1), scale)).tolist())
        if best_key is None or key < best_key:
            origins, best_key = [diffs], key
        elif key == best_key:
            origins.append(diffs)
    n = len(atoms)
    best, best_view = frame, None
    for h in cosets:
        F = frame @ h
        lattice_view = _rows(_quantize(lattice @ F, scale))
        if best_view is not None and lattice_view > best_view[0]:
            continue
        for diffs in origins:
            coords = _quantize((diffs @ F).reshape(-1, 3), scale)  # in-frame coordinates
            # the images of each atom in a fixed order, then the atoms by species and images
            pair = np.repeat(np.arange(n), diffs.shape[1])
            c = coords[np.lexsort((coords[:, 2], coords[:, 1], coords[:, 0], pair))].reshape(n, -1)
            view = (lattice_view, _rows(np.concatenate([labels[:, None].astype(np.int64), c], axis=1)))
            if best_view is None or view < best_view:
                best, best_view = F, view
    return best


def molecule_frame(positions: np.ndarray, numbers: np.ndarray, decimals: int = 4) -> np.ndarray:
    """Canonical orthonormal frame of a point set, unique up to its own symmetry.

    Candidate frames are built from ordered pairs (i, j) of non-collinear positions
    (relative to the centroid), i among the atoms of an equivariantly chosen shell, in
    both handednesses; the frame whose view of the structure (sorted species and
    rounded coordinates) is lexicographically smallest wins. Two frames with the same
    view differ by a symmetry of the structure, so the choice is equivariant modulo S.
    """
    r = positions - positions.mean(axis=0)
    radius = np.linalg.norm(r, axis=1)
    counts = {z: int((numbers == z).sum()) for z in set(numbers.tolist())}
    shell_key = [(counts[z], z, round(float(rad), 3)) for z, rad in zip(numbers, radius)]
    candidates = [i for i in range(len(r)) if radius[i] > 1e-3]
    best_key = min(shell_key[i] for i in candidates)
    first = [i for i in candidates if shell_key[i] == best_key]
    scale = 10.0**decimals
    best, best_view = None, None
    for i in first:
        for j in range(len(r)):
            c = np.cross(r[i], r[j])
            if np.linalg.norm(c) < 1e-3 * max(radius[i] * radius[j], 1e-12):
                continue
            e1 = r[i] / radius[i]
            e2 = r[j] - (r[j] @ e1) * e1
            e2 /= np.linalg.norm(e2)
            for hand in (1.0, -1.0):
                F = np.stack([e1, e2, hand * np.cross(e1, e2)], axis=1)
                coords = np.rint(r @ F * scale).astype(np.int64)
                view = tuple(sorted(zip(numbers.tolist(), map(tuple, coords.tolist()))))
                if best_view is None or view < best_view:
                    best, best_view = F, view
    if best is None:
        raise SBSInputError("all atoms are collinear: linear molecules have continuous symmetry")
    return best


def _molecule(atoms: Atoms, symprec: float, angle_tolerance: float) -> Symmetry:
    """The point group of a molecule about its centre of mass: every orthogonal map that
    takes each atom within max(symprec, 1e-3) Å of an atom of its species (and magnetic
    moment), from the exhaustive search of :func:`point_set_group`."""
    if len(atoms) == 1:
        raise SBSInputError("a single atom has the full rotation group O(3); there is no finite group to break")
    labels = species_labels(atoms)  # magnetic moments keep the subgroup that preserves them
    centre = atoms.get_center_of_mass()
    r = atoms.positions - centre
    tol = max(symprec, 1e-3)
    if collinear(r, tol):
        inversion = atom_permutation(atoms, -np.eye(3), 2 * centre, tol, periodic=False, labels=labels)
        raise SBSInputError(
            f"linear molecule ({'D∞h' if inversion is not None else 'C∞v'}): its symmetry group is continuous; "
            "there is no finite set of variants to enumerate"
        )
    mats, perms = point_set_group(r, labels, tol)
    trans = centre - mats @ centre
    # symmetrized positions give a frame that does not depend on noise
    frame = molecule_frame(Symmetrizer(mats, perms).positions(atoms), labels)
    order = _canonical_order(mats, frame)
    mats, trans, perms = mats[order], trans[order], perms[order]
    operations = Operations(rotations=mats, translations=trans, permutations=perms, point_index=np.arange(len(mats)))
    return _symmetry(atoms, mats, operations, frame, symprec, angle_tolerance)


def detect_symmetry(atoms: Atoms, symprec: float = 1e-3, angle_tolerance: float = -1.0) -> Symmetry:
    """Detect the symmetry of ``atoms``.

    Args:
        atoms: a crystal (``pbc`` all True, non-degenerate cell) or a molecule
            (``pbc`` all False).
        symprec: distance tolerance in Å (spglib's ``symprec``; for molecules each
            operation moves every atom within max(symprec, 1e-3) Å of an equivalent one).
        angle_tolerance: spglib's angle tolerance in degrees (-1: its default).

    Raises:
        SBSInputError: empty structure, overlapping atoms, periodic without a cell,
            partial periodicity, linear molecule or single atom, or a tolerance that
            finds no consistent symmetry.
    """
    check_structure(atoms)
    _check_tolerances(symprec, angle_tolerance)
    if np.asarray(atoms.pbc).all():
        return _crystal(atoms, symprec, angle_tolerance)
    return _molecule(atoms, symprec, angle_tolerance)


def symmetrized_atoms(sym: Symmetry) -> Atoms:
    """The structure moved (by at most ~symprec) onto exact symmetry S."""
    atoms = sym.atoms.copy()
    if sym.periodic:
        refine_symmetry(atoms, max(sym.symprec, 1e-5))
        return atoms
    atoms.positions = Symmetrizer(sym.operations.rotations, sym.operations.permutations).positions(atoms)
    return atoms


def crystal_point_group_matrices(sym: Symmetry) -> np.ndarray:
    """Cartesian matrices of the crystal's full point group (the crystal class), in the
    input frame, also when the cell is a supercell that breaks some of them: taken
    from spglib's standardized conventional cell and rotated back."""
    if not sym.periodic:
        return sym.point_group_matrices
    atoms = sym.atoms
    ds = symmetry_dataset((np.asarray(atoms.cell), atoms.get_scaled_positions(), species_labels(atoms)),
                          sym.symprec, sym.angle_tolerance)
    L = np.asarray(ds.std_lattice, dtype=float)
    rotations, _ = symmetry_operations((L, ds.std_positions, ds.std_types), sym.symprec)
    W = np.unique(rotations, axis=0).astype(float)
    R_std = np.einsum("ij,njk,kl->nil", L.T, W, np.linalg.inv(L).T)
    Q = np.asarray(ds.std_rotation_matrix, dtype=float)
    u, _, vt = np.linalg.svd(Q)
    Q = u @ vt
    mats = np.einsum("ji,njk,kl->nil", Q, R_std, Q)
    order = sorted(range(len(mats)), key=lambda i: not np.allclose(mats[i], np.eye(3), atol=1e-6))
    return refine_group(mats[order])
