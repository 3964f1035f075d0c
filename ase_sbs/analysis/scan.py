"""Structure + potential -> the instability scan (:mod:`ase_sbs.setting.scan`), with the
potential resolved by name, the parent relaxed within its own group first (as an
exploration relaxes it), and the displaced structures of each star's Hessian evaluated
in batches when the potential batches.

The parent relaxation minimizes the potential with forces and stress projected onto the
parent's space group (every operation of its primitive cell) and the cell free, to
``fmax`` eV/Å: the lattice constant of a cubic perovskite relaxes, its Wyckoff positions
stay. The scan then runs at that exactly symmetric structure.
"""

from __future__ import annotations

import sys

from ..core.symmetrizer import Symmetrizer
from ..errors import SBSInputError
from ..potentials.batched import evaluate_structures
from ..potentials.registry import Potential, get_potential, torch_energy
from ..relax.jobs import RelaxJob, Stage
from ..relax.runners import make_runner
from ..setting.curvature import calculator_gradients, gradient_vector
from ..setting.scan import ScanResult, instability_scan, scan_parent

BATCH = 8  # displaced structures per batched evaluation on the CPU


def relax_in_group(structure, pot: Potential, fmax: float = 5e-4, max_steps: int = 1000, runner=None,
                   symprec: float = 1e-3):
    """The exactly symmetric primitive parent of ``structure`` relaxed within its own
    space group (module docstring); returns its relaxed ``ase.Atoms``."""
    parent = scan_parent(structure, symprec)
    runner = runner if runner is not None else make_runner("auto", pot)
    ops = parent.operations
    job = RelaxJob(parent.atoms.copy(), [Stage(0.0, fmax, max_steps)], cell="full",
                   symmetrizer=Symmetrizer(ops.rotations, ops.permutations))
    res = runner.relax([job])[0]
    if not res.converged[0]:
        raise SBSInputError(f"the parent did not converge within {max_steps} steps at fmax={fmax} eV/Å inside its "
                            "own symmetry; raise max_steps or check the structure")
    return res.atoms


def gradients_factory(pot: Potential, runner=None):
    """``gradients_for(setting)`` for :func:`~ase_sbs.setting.scan.instability_scan`:
    the runner's batched potential when it has one (chunks of :data:`BATCH`), else the
    potential's calculator one structure at a time."""
    batched = getattr(runner, "potential", None)
    batched = batched if getattr(batched, "batched", False) else None

    def gradients_for(setting):
        single = calculator_gradients(setting, pot.calc)

        def gradients(structures):
            out = []
            for k in range(0, len(structures), BATCH if batched is not None else 1):
                chunk = structures[k:k + (BATCH if batched is not None else 1)]
                if batched is None:
                    out += single(chunk)
                    continue
                results = evaluate_structures(batched, chunk, runner.budget()[0], runner.device)
                out += [gradient_vector(setting, a, f, st) for a, (_, f, st) in zip(chunk, results)]
            return out

        return gradients

    return gradients_for


def scan_structure(parent_atoms, pot: Potential, runner=None, grid: int = 4, path_divisions: int | None = None,
                   step: float = 0.01, progress: bool = False, path: bool = True,
                   symprec: float = 1e-3) -> ScanResult:
    """The scan of ``parent_atoms`` as it is (an already relaxed parent) under ``pot``;
    an eager NequIP model gives exact Hessian-vector products instead of differences."""
    energy = torch_energy(pot.calc)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="scan", unit="star", file=sys.stderr, leave=False)

    def report(done, total, name):
        if bar is not None:
            bar.total = total
            bar.set_postfix_str(name)
            bar.update(done - bar.n)

    try:
        result = instability_scan(parent_atoms, energy or pot.calc, grid=grid, path_divisions=path_divisions,
                                  step=step, gradients_for=None if energy else gradients_factory(pot, runner),
                                  progress=report, symprec=symprec, path=path)
    finally:
        if bar is not None:
            bar.close()
    result.potential = pot.name
    return result


def scan(atoms, calc="auto", grid: int = 4, path_divisions: int | None = None, *, relax: bool = True,
         device: str = "cpu", symprec: float = 1e-3, step: float = 0.01, fmax: float = 5e-4,
         max_steps: int = 1000, engine: str = "auto", progress: bool = False, path: bool = True) -> ScanResult:
    """Which wave vectors of a crystal are unstable under a potential
    (:mod:`ase_sbs.setting.scan`): every channel's curvatures at each star of the
    N×N×N grid (``grid``), at the special points and along the lines of the parent
    lattice's path (``path_divisions`` steps per line, default N; ``path`` False: none).

    Args:
        atoms: the crystal (any cell; its primitive parent is scanned).
        calc: ``auto``, a registered name (``7net-0``, ``emt`` …), a NequIP model file,
            a :class:`~ase_sbs.potentials.registry.Potential` or an ASE calculator.
        relax: relax the parent within its own group first (module docstring), to
            ``fmax`` eV/Å in at most ``max_steps`` steps; False scans ``atoms`` as given.
        step: finite-difference step (Å, or strain coordinate ε·ℓ in Å).
        engine: the runner of the parent relaxation and of batched evaluations
            (``auto``, ``ase``, ``batched``).
    """
    pot = calc if isinstance(calc, Potential) else get_potential(calc, atoms.get_chemical_symbols(), device)
    pot.check_covers(atoms.get_chemical_symbols())
    runner = make_runner(engine, pot, device)
    parent = relax_in_group(atoms, pot, fmax, max_steps, runner, symprec) if relax else atoms
    return scan_structure(parent, pot, runner, grid, path_divisions, step, progress, path, symprec)
