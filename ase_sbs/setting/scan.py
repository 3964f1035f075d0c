"""Primitive parent + potential -> which wave vectors are unstable: the instability scan.

Wave vectors. k in fractions of the primitive parent's reciprocal basis (a pattern with
wave vector k changes by e^{2πik·n} under the lattice translation n). The grid of an
N×N×N supercell holds k = m/N, m ∈ Z³ (N³ points); real distortions at k carry −k too,
so the points are grouped into stars under the parent's point group and k ↦ −k
(:func:`~ase_sbs.setting.kpoints.full_star`). The special points of the parent's
Bravais lattice are added as stars of their own where the grid misses them (the K point
of a hexagonal lattice), and the lines of ASE's standard path are sampled at
``path_divisions`` steps per line for the picture.

One Hessian per star. A pattern at k is periodic in the lattice Λ_k = {n : k·n ∈ Z}
(:func:`~ase_sbs.setting.kpoints.kpoint_lattice`, index = the order of k modulo the
reciprocal lattice, at most N for the grid), so its curvature needs only that cell: the
supercell setting of Λ_k (G = the operations keeping Λ_k, modulo Λ_k), one
symmetry-reduced Hessian there (:func:`~ase_sbs.setting.curvature.setting_hessian`), and
its channels whose k-vectors contain k. Each is the restriction of one channel of the
full star (induction in stages: the irreps of the space group at the star of k are
induced from those of the operations that keep k, which G contains), so its block
eigenvalues are that channel's curvatures: the eigenvalues of the force-constant matrix
C(k) = Σ_n Φ(0, n) e^{2πik·n} in that symmetry, eV/Å² per unit displacement of the whole
cell (independent of which cell holds the pattern). The label gives the dimension of the
full star's irrep: d = d_folded · |star| / (arms the folded channel holds). The cost
grows with the number of stars, not with N³.

Frequencies. A channel without strain is invariant under the mass matrix M (masses are
G-invariant), so its phonon frequencies are the eigenvalues λ of its block of
M^{-1/2} H M^{-1/2}: ν = 15.633302 · sign(λ) √|λ| THz (λ in eV/(Å² amu); negative:
imaginary). For a channel moving one species of mass m this is ν = 15.633302 √(κ/m) for
each curvature κ; a channel moving several species is marked ``mixed`` (its frequencies
are still exact, but do not pair with its curvatures one by one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from ase.data import atomic_masses, chemical_symbols

from ..core.structure import formula
from ..core.symmetry import Symmetry, detect_symmetry, symmetrized_atoms
from ..errors import SBSInputError
from .cells import primitive_cell
from .channels import DistortionChannel, channel_matches_kpoint, distortion_channels
from .curvature import channel_block_curvatures, setting_hessian
from .kpoints import (
    bravais_lattice,
    fraction,
    full_star,
    kpoint_lattice,
    line_name,
    reduced_supercell,
    same_k,
    special_kpoints,
    special_path,
)
from .setting import Setting, supercell_setting

UNSTABLE = -1e-3
"""eV/Å²: a curvature below this is an instability (as :attr:`DistortionChannel.unstable`)."""
THZ = 15.633302
"""√(eV/(Å² amu)) / 2π in THz."""


@dataclass(frozen=True)
class ScanChannel:
    """One channel of the full star of k, as its folded cell sees it.

    Attributes:
        label: ``<star>-d<dim><parity>`` (``Γ-<Mulliken>`` at Γ), ``(n)`` telling apart
            channels that would share a label.
        dimension: of the parent's irrep at the full star.
        multiplicity: copies of it in the distortion space.
        sources: ``displacement`` and/or ``strain``.
        curvatures: eV/Å², lowest first.
        species: the one species it moves, ``mixed``, or None when it holds strain.
        frequencies_THz: signed (negative: imaginary), lowest first; None with strain.
    """

    label: str
    dimension: int
    multiplicity: int
    sources: tuple
    curvatures: tuple
    species: str | None
    frequencies_THz: tuple | None

    @property
    def lowest(self) -> float:
        return min(self.curvatures)

    @property
    def unstable(self) -> bool:
        return self.lowest < UNSTABLE

    def as_dict(self) -> dict:
        return {"label": self.label, "dimension": self.dimension, "multiplicity": self.multiplicity,
                "sources": list(self.sources), "curvatures_eV_A2": list(self.curvatures), "species": self.species,
                "frequencies_THz": None if self.frequencies_THz is None else list(self.frequencies_THz)}

    @classmethod
    def fromdict(cls, d: dict) -> "ScanChannel":
        f = d["frequencies_THz"]
        return cls(str(d["label"]), int(d["dimension"]), int(d["multiplicity"]), tuple(d["sources"]),
                   tuple(float(x) for x in d["curvatures_eV_A2"]), d["species"],
                   None if f is None else tuple(float(x) for x in f))


@dataclass(frozen=True)
class StarScan:
    """The channels of one star and the cell they were computed in.

    Attributes:
        name: a special point (``R``), a point on a line (``Σ(1/4,1/4,0)``) or ``k(...)``.
        kpoint: the arm computed (fractions of the parent's reciprocal basis).
        arms: every arm of the star (with −k).
        supercell: Λ_k as rows in the parent's basis (the folded cell).
        natoms: atoms of the folded cell; ``group_order``: |G| there.
        channels: the star's channels, by label.
        evaluations: displaced structures the Hessian took.
        seconds: wall time of the star (decomposition and Hessian).
        on_grid: a point of the N×N×N grid; ``special``: a special point.
    """

    name: str
    kpoint: tuple
    arms: tuple
    supercell: tuple
    natoms: int
    group_order: int
    channels: tuple
    evaluations: int
    seconds: float
    on_grid: bool
    special: bool

    @property
    def lowest(self) -> float:
        return min(c.lowest for c in self.channels) if self.channels else float("inf")

    @property
    def unstable(self) -> bool:
        return self.lowest < UNSTABLE

    @property
    def unstable_channels(self) -> list:
        return sorted((c for c in self.channels if c.unstable), key=lambda c: c.lowest)

    def as_dict(self) -> dict:
        return {"name": self.name, "kpoint": [fraction(x) for x in self.kpoint],
                "arms": [[fraction(x) for x in a] for a in self.arms], "supercell": [list(r) for r in self.supercell],
                "natoms": self.natoms, "group_order": self.group_order, "lowest_curvature_eV_A2": self.lowest,
                "unstable": self.unstable, "channels": [c.as_dict() for c in self.channels],
                "evaluations": self.evaluations, "seconds": self.seconds, "on_grid": self.on_grid,
                "special": self.special}

    @classmethod
    def fromdict(cls, d: dict) -> "StarScan":
        frac = [_number(x) for x in d["kpoint"]]
        return cls(str(d["name"]), tuple(frac), tuple(tuple(_number(x) for x in a) for a in d["arms"]),
                   tuple(tuple(int(x) for x in r) for r in d["supercell"]), int(d["natoms"]),
                   int(d["group_order"]), tuple(ScanChannel.fromdict(c) for c in d["channels"]),
                   int(d["evaluations"]), float(d["seconds"]), bool(d["on_grid"]), bool(d["special"]))


@dataclass(frozen=True)
class PathPoint:
    """A point of the high-symmetry path: its distance ``x`` along the path (1/Å, no 2π),
    k, the star it belongs to (index into :attr:`ScanResult.stars`) and the special
    point's name at the path's corners (``label``, ``X|M`` at a jump) and the continuous
    piece of the path it lies on."""

    x: float
    kpoint: tuple
    star: int
    label: str | None = None
    piece: int = 0


@dataclass
class ScanResult:
    """Every star's channels and the path through them (module docstring).

    ``stars``: grid stars and special points first (``selected``: the stars the setting
    is chosen from), then the path's other points. ``evaluations``: displaced structures
    evaluated, ``seconds``: wall time, ``potential``: its name, when known."""

    parent_formula: str
    parent_spacegroup: str
    lattice: str
    cell: list
    grid: int
    path_divisions: int
    stars: list[StarScan]
    path: list[PathPoint] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    potential: str = ""

    @property
    def selected(self) -> list[StarScan]:
        """The grid's stars and the special points: those the setting is chosen from."""
        return [s for s in self.stars if s.on_grid or s.special]

    @property
    def unstable_stars(self) -> list[StarScan]:
        """The selected stars with an unstable channel, most unstable first."""
        return sorted((s for s in self.selected if s.unstable), key=lambda s: s.lowest)

    @property
    def grid_minima(self) -> list[str]:
        """The unstable grid stars whose lowest curvature is no higher than at any nearest
        grid point (the first shell of k + Λ*/N in Cartesian distance): where an unstable
        branch is deepest, against the stars that lie on its slopes."""
        index = {StarIndex.key(a): i for i, s in enumerate(self.stars) for a in s.arms}
        B = np.linalg.inv(np.asarray(self.cell, dtype=float)).T
        steps = np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T
        steps = steps[np.abs(steps).sum(axis=1) > 0]
        length = np.linalg.norm(steps @ B, axis=1)
        shell = steps[length < length.min() * (1 + 1e-6)] / self.grid
        out = []
        for s in self.stars:
            if not (s.on_grid and s.unstable):
                continue
            around = [self.stars[index[StarIndex.key(np.asarray(s.kpoint) + d)]].lowest for d in shell]
            if all(s.lowest <= x + 1e-9 for x in around):
                out.append(s.name)
        return out

    def as_dict(self) -> dict:
        return {"parent": {"formula": self.parent_formula, "spacegroup": self.parent_spacegroup,
                           "lattice": self.lattice, "cell": self.cell},
                "potential": self.potential, "grid": self.grid, "path_divisions": self.path_divisions,
                "unstable": [s.name for s in self.unstable_stars], "grid_minima": self.grid_minima,
                "evaluations": self.evaluations,
                "seconds": self.seconds, "stars": [s.as_dict() for s in self.stars],
                "path": [{"x": p.x, "kpoint": [fraction(v) for v in p.kpoint], "star": p.star, "label": p.label,
                          "piece": p.piece} for p in self.path]}

    @classmethod
    def fromdict(cls, d: dict) -> "ScanResult":
        """The inverse of :meth:`as_dict` (KeyError, TypeError or ValueError on a bad record)."""
        p = d["parent"]
        path = [PathPoint(float(q["x"]), tuple(_number(v) for v in q["kpoint"]), int(q["star"]), q["label"],
                          int(q["piece"])) for q in d["path"]]
        return cls(str(p["formula"]), str(p["spacegroup"]), str(p["lattice"]), p["cell"], int(d["grid"]),
                   int(d["path_divisions"]), [StarScan.fromdict(s) for s in d["stars"]], path,
                   int(d["evaluations"]), float(d["seconds"]), str(d["potential"]))


def _number(x) -> float:
    from fractions import Fraction

    return float(Fraction(str(x)))


# ----------------------------------------------------------------------------------
# the parent, the grid, the path


def scan_parent(structure, symprec: float = 1e-3) -> Symmetry:
    """The exactly symmetric primitive parent of a crystal (as the supercell settings
    build it), or the given Symmetry when it already is one."""
    sym = structure if isinstance(structure, Symmetry) else detect_symmetry(structure, symprec=symprec)
    if not sym.periodic:
        raise SBSInputError("the instability scan needs a crystal (pbc=True): a molecule has no wave vectors")
    exact = detect_symmetry(symmetrized_atoms(sym), symprec=symprec)
    prim, _ = primitive_cell(exact)
    return detect_symmetry(symmetrized_atoms(detect_symmetry(prim, symprec=symprec)), symprec=symprec)


def grid_kpoints(n: int) -> np.ndarray:
    """(n³, 3): k = m/n, m ∈ {0 … n−1}³."""
    m = np.array(np.meshgrid(*[np.arange(n)] * 3, indexing="ij")).reshape(3, -1).T
    return m / float(n)


class StarIndex:
    """Stars found so far, looked up by any arm (module docstring)."""

    def __init__(self, parent: Symmetry):
        self.parent = parent
        self.rotations = parent.operations.rotations_frac
        self.stars: list[np.ndarray] = []
        self.keys: dict = {}

    @staticmethod
    def key(k) -> tuple:
        return tuple(int(x) for x in np.round(np.mod(np.asarray(k, dtype=float), 1.0) * 960) % 960)

    def find(self, k) -> int | None:
        return self.keys.get(self.key(k))

    def add(self, k) -> int:
        hit = self.find(k)
        if hit is not None:
            return hit
        arms = full_star(k, self.rotations)
        self.stars.append(arms)
        for a in arms:
            self.keys[self.key(a)] = len(self.stars) - 1
        return len(self.stars) - 1


def path_points(parent: Symmetry, divisions: int) -> list[tuple[float, np.ndarray, str | None, int]]:
    """ASE's standard path of the parent's lattice (:func:`~ase_sbs.setting.kpoints.special_path`),
    each line cut into ``divisions`` steps: (x, k, corner label, piece), x the distance
    along the path in Cartesian 1/Å (no 2π). A jump between pieces adds no distance: the
    last corner of a piece is labelled ``X|M`` and the next piece starts at the same x."""
    points = special_kpoints(parent)
    B = np.linalg.inv(np.asarray(parent.atoms.cell, dtype=float)).T
    out: list = []
    x = 0.0
    for p, piece in enumerate(special_path(parent)):
        first = points[piece[0]]
        if out:
            out[-1] = (out[-1][0], out[-1][1], f"{out[-1][2]}|{piece[0]}", out[-1][3])
        out.append((x, first, None if out else piece[0], p))
        for a, b in zip(piece[:-1], piece[1:]):
            A, d = points[a], points[b] - points[a]
            for j in range(1, divisions + 1):
                x += float(np.linalg.norm(d @ B)) / divisions
                out.append((x, A + d * j / divisions, b if j == divisions else None, p))
    return out


def star_names(parent: Symmetry, stars: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(name, representative arm) of each star: a special point by its name and
    coordinates; else a point of a line of the path, named by the line (Δ, Σ, Λ … for
    the cubic lattices, ``X–M`` otherwise) with its coordinates on that line; else
    ``k(...)`` with the arm of fewest negative components (in (−½, ½])."""
    points = special_kpoints(parent)
    pearson = bravais_lattice(parent)
    lines = []
    for piece in special_path(parent):
        lines += [(a, b) for a, b in zip(piece[:-1], piece[1:])]
    shifts = np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T
    out = []
    for arms in stars:
        found = None
        for name, point in points.items():
            if any(same_k(point, a) for a in arms):
                found = (name, np.asarray(point, dtype=float))
                break
        for a, b in lines if found is None else ():
            A, d = points[a], points[b] - points[a]
            for arm in arms:
                for n in shifts:
                    t = float((arm + n - A) @ d / (d @ d))
                    if 1e-6 < t < 1 - 1e-6 and np.abs(arm + n - A - t * d).max() < 1e-6:
                        q = A + t * d
                        found = (f"{line_name(a, b, pearson)}({','.join(fraction(v) for v in q)})", q)
                        break
                if found:
                    break
            if found:
                break
        if found is None:
            reduced = [np.where(a > 0.5 + 1e-9, a - 1.0, a) for a in arms]
            best = min(reduced, key=lambda a: (int((a < -1e-9).sum()), tuple(-a)))
            found = ("k(" + ",".join(fraction(v) for v in best) + ")", best)
        out.append(found)
    return out


# ----------------------------------------------------------------------------------
# one star


def star_channels(setting: Setting, hessian: np.ndarray, k, arms: np.ndarray, name: str) -> tuple:
    """The channels of ``setting`` (the folded cell of k) at k, as :class:`ScanChannel`
    of the full star (module docstring: labels, dimensions, frequencies)."""
    n = len(setting.atoms)
    masses = atomic_masses[setting.atoms.numbers]
    w = np.ones(setting.dimension)
    w[: 3 * n] = np.repeat(masses ** -0.5, 3)
    Hm = hessian * w[:, None] * w[None, :]
    gamma = name == "Γ"
    found = []
    for c in distortion_channels(setting):
        if not channel_matches_kpoint(c, k):
            continue
        held = sum(1 for s in c.kstar if any(same_k([_number(x) for x in s], a) for a in arms))
        dim = c.dimension * len(arms) // max(held, 1)
        base = c.label.split("(")[0] if c.label.endswith(")") else c.label
        parity = base[-1] if base[-1] in "+-" and not gamma else ""
        label = ("Γ-" + base.removeprefix("Γ-")) if gamma else f"{name}-d{dim}{parity}"
        curv = tuple(sorted(channel_block_curvatures(c, hessian, setting.order)))
        found.append((label, c, dim, curv, _species(setting, c), Hm))
    count: dict = {}
    for label, *_ in found:
        count[label] = count.get(label, 0) + 1
    seen: dict = {}
    out = []
    for label, c, dim, curv, species, Hm in sorted(found, key=lambda f: (f[0], f[3][0])):
        if count[label] > 1:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label}({seen[label]})"
        freq = None
        if species is not None:
            freq = _frequencies(setting, c, Hm, gamma)
        out.append(ScanChannel(label, dim, c.multiplicity, c.sources, curv, species, freq))
    return tuple(out)


def _frequencies(setting: Setting, channel: DistortionChannel, Hm: np.ndarray, gamma: bool) -> tuple:
    """Signed frequencies (THz) of a channel without strain from its block of
    M^{-1/2} H M^{-1/2} (module docstring). At Γ the distortion space leaves out uniform
    translations (Σ u_i = 0), but optic modes satisfy Σ m_i u_i = 0 instead: for the
    channel of the polar vector (the translations' irrep, character tr R) the translations
    are added back as one more copy and its acoustic group (the value nearest zero) dropped."""
    n = len(setting.atoms)
    if gamma and np.allclose(channel.character, np.trace(setting.rotations, axis1=1, axis2=2), atol=1e-6):
        T = np.zeros((setting.dimension, 3))
        for a in range(3):
            T[a: 3 * n: 3, a] = 1.0 / np.sqrt(n)
        channel = replace(channel, copies=channel.copies + (T,), multiplicity=channel.multiplicity + 1)
        lam = list(channel_block_curvatures(channel, Hm, setting.order))
        lam.pop(int(np.argmin(np.abs(lam))))
    else:
        lam = list(channel_block_curvatures(channel, Hm, setting.order))
    return tuple(float(THZ * np.sign(v) * np.sqrt(abs(v))) for v in sorted(lam))


def _species(setting: Setting, channel: DistortionChannel) -> str | None:
    """The one species the channel moves, ``mixed``, or None when it holds strain."""
    if "strain" in channel.sources:
        return None
    n = len(setting.atoms)
    weight = np.linalg.norm(channel.basis[: 3 * n].reshape(n, 3, -1), axis=(1, 2))
    moved = sorted({chemical_symbols[z] for z in setting.atoms.numbers[weight > 1e-8]})
    return moved[0] if len(moved) == 1 else "mixed"


def scan_star(parent: Symmetry, k, arms: np.ndarray, name: str, calc=None, step: float = 0.01,
              gradients_for=None) -> StarScan:
    """One star (module docstring): the folded cell Λ_k, its setting, one Hessian, the
    channels at k. ``calc`` and ``step``: as :func:`~ase_sbs.setting.curvature.setting_hessian`;
    ``gradients_for(setting)``: a gradients callable for the setting (a batched
    potential), or None."""
    start = time.perf_counter()
    k = np.asarray(k, dtype=float)
    P = reduced_supercell(kpoint_lattice([k]), parent.atoms.cell)
    setting = supercell_setting(parent, P, parent.symprec)
    gradients = gradients_for(setting) if gradients_for is not None else None
    hessian = setting_hessian(setting, calc, step, gradients)
    channels = star_channels(setting, hessian.matrix, np.mod(k, 1.0), arms, name)
    return StarScan(name=name, kpoint=tuple(float(x) for x in k), arms=tuple(tuple(map(float, a)) for a in arms),
                    supercell=tuple(tuple(int(x) for x in r) for r in P), natoms=len(setting.atoms),
                    group_order=setting.order, channels=channels, evaluations=hessian.evaluations,
                    seconds=time.perf_counter() - start, on_grid=False, special=False)


def instability_scan(structure, calc=None, grid: int = 4, path_divisions: int | None = None, step: float = 0.01,
                     gradients_for=None, progress=None, symprec: float = 1e-3, path: bool = True) -> ScanResult:
    """The instability scan of a crystal (module docstring).

    Args:
        structure: the parent (``ase.Atoms`` in any cell, or its Symmetry): reduced to its
            exactly symmetric primitive cell, scanned as it is (relax it first).
        calc: an ASE calculator or a torch energy (:func:`~ase_sbs.setting.curvature.setting_hessian`).
        grid: N of the N×N×N grid (≥ 1).
        path_divisions: steps per line of the path (default N); ``path``: False scans the
            grid and the special points only.
        gradients_for: ``gradients_for(setting)`` -> gradients callable (a batched
            potential's), instead of ``calc``'s calls.
        progress: called as ``progress(done, total, star name)`` after each star.
    """
    if not isinstance(grid, (int, np.integer)) or grid < 1:
        raise SBSInputError(f"the scan's grid is a positive integer N (an N×N×N supercell), got {grid!r}")
    divisions = grid if path_divisions is None else path_divisions
    if not isinstance(divisions, (int, np.integer)) or divisions < 1:
        raise SBSInputError(f"the path's divisions per line are a positive integer, got {path_divisions!r}")
    start = time.perf_counter()
    parent = scan_parent(structure, symprec)
    index = StarIndex(parent)
    for k in grid_kpoints(grid):
        index.add(k)
    n_grid = len(index.stars)
    specials = {index.add(k) for k in special_kpoints(parent).values()}
    raw_path = path_points(parent, divisions) if path else []
    path_star = [index.add(k) for _, k, _, _ in raw_path]
    names = star_names(parent, index.stars)
    stars = []
    for i, (arms, (name, rep)) in enumerate(zip(index.stars, names)):
        s = scan_star(parent, rep, arms, name, calc, step, gradients_for)
        stars.append(StarScan(**{**s.__dict__, "on_grid": i < n_grid, "special": i in specials}))
        if progress is not None:
            progress(i + 1, len(index.stars), name)
    return ScanResult(
        parent_formula=formula(parent.atoms), parent_spacegroup=str(parent.spacegroup_symbol),
        lattice=bravais_lattice(parent), cell=np.asarray(parent.atoms.cell).tolist(), grid=int(grid),
        path_divisions=int(divisions), stars=stars,
        path=[PathPoint(x, tuple(float(v) for v in k), j, lab, piece)
              for (x, k, lab, piece), j in zip(raw_path, path_star)],
        evaluations=sum(s.evaluations for s in stars), seconds=time.perf_counter() - start)
