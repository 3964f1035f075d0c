"""The batched engine against plain ASE: FIRE + FrechetCellFilter step for step, the
explore of bcc Cu through both paths, mixed batches with per-structure convergence,
the batched bias and symmetrization, the sequential fallback, devices."""

import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

from ase_sbs import (
    SBSInputError,
    break_symmetry,
    detect_symmetry,
    symmetry_breaking_set,
)
from ase_sbs.bias import BiasDescriptor, evaluate_bias
from ase_sbs.core.symmetrizer import BatchSymmetrizer, Symmetrizer
from ase_sbs.potentials.batched import radius_graph
from ase_sbs.relax.engine import CPU_BATCH_ATOMS, BatchLimits, Engine, relax
from ase_sbs.relax.jobs import RelaxJob, Stage


def quiet_relax(jobs, calc=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return relax(jobs, calc if calc is not None else EMT(), **kw)


def strained_cu(seed=3):
    a = bulk("Cu", "fcc", a=3.7, cubic=True) * (2, 1, 1)
    a.rattle(0.05, seed=seed)
    strain = np.eye(3) + [[0.02, 0.01, 0.0], [0.01, -0.01, 0.0], [0.0, 0.0, 0.03]]
    a.set_cell(np.asarray(a.cell) @ strain, scale_atoms=True)
    return a


@pytest.mark.parametrize("cell", ["full", "volume", "fixed"])
def test_fire_follows_ase_fire_step_for_step(cell):
    atoms = strained_cu()
    ref = atoms.copy()
    ref.calc = EMT()
    target = ref if cell == "fixed" else FrechetCellFilter(ref, hydrostatic_strain=cell == "volume")
    opt = FIRE(target, logfile=None)
    ours = atoms.copy()
    for n in (1, 2, 5, 20):
        opt.run(fmax=1e-12, steps=n - opt.nsteps)
        res = quiet_relax([RelaxJob(ours.copy(), [Stage(0.0, 1e-12, n)], cell=cell)])[0]
        assert res.steps == [n] and res.converged == [False]
        assert np.abs(res.atoms.positions - ref.positions).max() < 1e-8
        assert np.abs(np.asarray(res.atoms.cell) - np.asarray(ref.cell)).max() < 1e-8
        assert abs(res.energy - ref.get_potential_energy()) < 1e-8
    if cell == "fixed":
        assert np.allclose(np.asarray(ref.cell), np.asarray(atoms.cell))
    else:
        assert np.abs(np.asarray(ref.cell) - np.asarray(atoms.cell)).max() > 1e-3  # the cell did move


@pytest.mark.parametrize("cell", ["full", "volume", "fixed"])
def test_bfgs_follows_the_ase_paths_bfgs_to_convergence(cell):
    """The ASE path's optimizer (BFGS, maxstep 0.1, FrechetCellFilter): same steps, same end."""
    from ase.optimize import BFGS

    atoms = strained_cu(seed=11)
    ref = atoms.copy()
    ref.calc = EMT()
    target = ref if cell == "fixed" else FrechetCellFilter(ref, hydrostatic_strain=cell == "volume")
    opt = BFGS(target, logfile=None, maxstep=0.1)
    assert opt.run(fmax=1e-4, steps=300)
    res = quiet_relax([RelaxJob(atoms, [Stage(0.0, 1e-4, 300)], cell=cell)], optimizer="bfgs")[0]
    assert res.converged == [True] and res.steps == [opt.nsteps] and opt.nsteps > 20
    assert np.abs(res.atoms.positions - ref.positions).max() < 1e-8
    assert np.abs(np.asarray(res.atoms.cell) - np.asarray(ref.cell)).max() < 1e-8


def test_convergence_criterion_and_step_count_match_ase_including_cell_rows():
    atoms = strained_cu(seed=5)
    ref = atoms.copy()
    ref.calc = EMT()
    opt = FIRE(FrechetCellFilter(ref), logfile=None)
    assert opt.run(fmax=0.02, steps=500)
    res = quiet_relax([RelaxJob(atoms, [Stage(0.0, 0.02, 500)])])[0]
    assert res.converged == [True] and res.steps == [opt.nsteps]
    assert np.abs(res.atoms.positions - ref.positions).max() < 1e-7


def test_stages_restart_the_optimizer_like_successive_ase_runs():
    atoms = strained_cu(seed=7)
    ref = atoms.copy()
    ref.calc = EMT()
    counts = []
    for fmax in (0.05, 0.01):
        opt = FIRE(FrechetCellFilter(ref), logfile=None)
        opt.run(fmax=fmax, steps=300)
        counts.append(opt.nsteps)
    res = quiet_relax([RelaxJob(atoms, [Stage(0.0, 0.05, 300), Stage(0.0, 0.01, 300)])])[0]
    assert res.steps == counts
    assert np.abs(res.atoms.positions - ref.positions).max() < 1e-7


@pytest.mark.parametrize("cell", ["full", "fixed"])
def test_an_initial_hessian_kept_across_stages_follows_ase_bfgs_restarted_from_its_own(cell):
    """BFGS from an initial Hessian (the symmetry-reduced Hessian at the start, mapped to
    FrechetCellFilter's coordinates), each stage restarting from the Hessian the previous
    one ended with: plain ASE (BFGS.H0 set by hand), the ASE runner and the engine take the
    same steps to the same structure."""
    from ase.optimize import BFGS

    from ase_sbs.relax.ase_runner import ASERunner
    from ase_sbs.relax.jobs import optimizer_hessian
    from ase_sbs.setting import k0_setting
    from ase_sbs.setting.curvature import setting_hessian

    start = bulk("Cu", "fcc", a=3.7, cubic=True) * (2, 1, 1)
    hessian = setting_hessian(k0_setting(start), EMT(), step=1e-3).matrix  # at the unrattled cell
    atoms = strained_cu(seed=13)
    stages = [Stage(0.0, 0.05, 300), Stage(0.0, 1e-4, 300)]
    job = RelaxJob(atoms, stages, cell=cell, hessian=hessian, keep_hessian=True)
    ref = atoms.copy()
    ref.calc = EMT()
    H, counts = optimizer_hessian(job), []
    for stage in stages:
        target = ref if cell == "fixed" else FrechetCellFilter(ref)
        opt = BFGS(target, logfile=None, maxstep=0.1)
        opt.H0 = H.copy()
        assert opt.run(fmax=stage.fmax, steps=stage.max_steps)
        counts.append(opt.nsteps)
        H = opt.H
    plain = quiet_relax([RelaxJob(atoms, stages, cell=cell)], optimizer="bfgs")[0]
    assert sum(counts) < sum(plain.steps)  # the point of it
    for res in (quiet_relax([job], optimizer="bfgs")[0], ASERunner(EMT()).relax([job])[0]):
        assert res.steps == counts and all(res.converged)
        assert np.abs(res.atoms.positions - ref.positions).max() < 1e-8
        assert np.abs(np.asarray(res.atoms.cell) - np.asarray(ref.cell)).max() < 1e-8


def test_a_mixed_batch_relaxes_each_structure_as_if_alone():
    """Different species sets, sizes, cells and a molecule; structures finish at
    different steps and waiting ones take their place (max 2 at a time)."""
    structures = [
        strained_cu(seed=1),
        bulk("Al", "fcc", a=4.2) * (2, 1, 1),
        bulk("Ni", "bcc", a=2.85, cubic=True),
        molecule("H2"),
    ]
    structures[1].rattle(0.04, seed=2)
    structures[2][0].symbol = "Pd"
    structures[2].rattle(0.03, seed=4)
    structures[3].center(vacuum=3.0)
    structures[3].pbc = False
    stages = [Stage(0.0, 0.02, 200)]
    alone = [quiet_relax([RelaxJob(a.copy(), stages)])[0] for a in structures]
    engine = Engine(EMT(), limits=BatchLimits(max_structures=2))
    finished = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        together = engine.relax([RelaxJob(a.copy(), stages) for a in structures],
                                on_done=lambda i, r: finished.append(i))
    steps = [r.steps[0] for r in alone]
    assert len(set(steps)) == 4  # they converge at different steps
    assert max(engine.evaluations) == 2 and engine.evaluations[-1] == 1 and sorted(finished) == [0, 1, 2, 3]
    # the first two start together; the one needing fewer steps leaves first and
    # structure 2 takes its place
    assert finished[0] == min((0, 1), key=lambda i: steps[i])
    for a, b, s in zip(alone, together, structures):
        assert b.converged == [True] and b.steps == a.steps
        assert b.atoms.get_chemical_symbols() == s.get_chemical_symbols()
        assert np.abs(a.atoms.positions - b.atoms.positions).max() < 1e-10
        assert abs(a.energy - b.energy) < 1e-10


def test_batched_bias_and_symmetrization_equal_the_single_structure_ones(batio3, cu_bcc):
    """The engine's bias term and symmetry constraint on a mixed batch (two objects, two
    descriptors, λ of both signs and zero) against the single-structure bias, symmetrized."""
    sym_b = detect_symmetry(batio3)
    sym_c = detect_symmetry(cu_bcc)
    B1 = symmetry_breaking_set(sym_b, "P4mm")
    B2 = symmetry_breaking_set(sym_c, "I4/mmm")
    d1, d2 = BiasDescriptor(B1.irreps), BiasDescriptor(B2.irreps)
    a1, a2, a3 = batio3.copy(), cu_bcc.copy() * (2, 1, 1), batio3.copy()
    for k, a in enumerate((a1, a2, a3)):
        a.rattle(0.05, seed=10 + k)
    jobs = [
        RelaxJob(a1, [Stage(0.7, 0.01, 1)], sbs_object=B1.objects[1], irreps=B1.irreps, descriptor=d1,
                 symmetrizer=Symmetrizer.from_subgroup(sym_b, B1.stabilizers[1])),
        RelaxJob(a2, [Stage(-0.3, 0.01, 1)], sbs_object=B2.objects[0], irreps=B2.irreps, descriptor=d2),
        RelaxJob(a3, [Stage(0.0, 0.01, 1)], sbs_object=B1.objects[0], irreps=B1.irreps, descriptor=d1),
    ]
    from dataclasses import replace

    from ase_sbs.potentials.batched import BatchedPotential

    class Nothing(BatchedPotential):
        """A potential of zero energy: what the engine returns is the bias alone."""

        name, cutoff = "zero", 5.0

        def evaluate(self, graphs):
            G, N = graphs.n_graphs, len(graphs.positions)
            return torch.zeros(G, dtype=torch.float64), torch.zeros(N, 3, dtype=torch.float64), \
                torch.zeros(G, 3, 3, dtype=torch.float64)

    energy, forces, stress = Engine(Nothing()).evaluate_jobs(jobs)
    ptr = [0, 5, 9, 14]
    for g, (a, j) in enumerate(zip((a1, a2, a3), jobs)):
        ref = evaluate_bias(a, j.sbs_object, j.irreps, j.stages[0].strength, j.descriptor)
        ref_f, ref_s = ref.forces, ref.stress
        if j.symmetrizer is not None:  # the engine's constraint symmetrizes what the terms give
            ref_f, ref_s = j.symmetrizer.forces(ref_f), j.symmetrizer.stress(ref_s)
        assert abs(float(energy[g]) - ref.energy) < 1e-10
        assert np.abs(forces[ptr[g]:ptr[g + 1]].numpy() - ref_f).max() < 1e-10
        assert np.abs(stress[g].numpy() - ref_s).max() < 1e-10
    unbiased = Engine(Nothing()).evaluate_jobs([replace(j, stages=[Stage(0.0, 0.01, 1)]) for j in jobs])
    assert all(float(torch.abs(x).max()) == 0.0 for x in unbiased)
    assert float(energy[0]) != 0.0 and float(energy[2]) == 0.0
    tables = BatchSymmetrizer([j.symmetrizer for j in jobs], [5, 4, 5], torch.device("cpu"), torch.float64)
    f = torch.randn(14, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    s = torch.randn(3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sf, ss = tables.forces(f), tables.stress(s)
    symm = jobs[0].symmetrizer
    assert np.abs(sf[:5].numpy() - symm.forces(f[:5].numpy())).max() < 1e-12
    assert np.abs(ss[0].numpy() - symm.stress(s[0].numpy())).max() < 1e-12
    assert torch.equal(sf[5:], f[5:]) and torch.equal(ss[1:], s[1:])


def test_radius_graph_matches_ase_neighbor_list():
    from ase.neighborlist import neighbor_list

    structures = [strained_cu(), bulk("Cu", "bcc", a=2.9), molecule("CH4")]
    structures[2].center(vacuum=2.0)
    structures[2].pbc = False
    structures[1].positions += [3.0, -7.0, 1.0]  # far outside the cell
    pos = torch.tensor(np.concatenate([a.positions for a in structures]))
    cells = torch.tensor(np.stack([np.asarray(a.cell) for a in structures]))
    ptr = np.cumsum([0] + [len(a) for a in structures]).tolist()
    per = [bool(a.pbc.all()) for a in structures]
    src, dst, shifts = radius_graph(pos, cells, ptr, per, 4.5)
    for g, a in enumerate(structures):
        i, j, d = neighbor_list("ijd", a, 4.5)
        sel = (src >= ptr[g]) & (src < ptr[g + 1])
        vec = pos[dst[sel]] - pos[src[sel]] + shifts[sel] @ cells[g]
        ours = sorted(zip((src[sel] - ptr[g]).tolist(), (dst[sel] - ptr[g]).tolist(),
                          np.round(vec.norm(dim=1).numpy(), 8).tolist()))
        theirs = sorted(zip(i.tolist(), j.tolist(), np.round(d, 8).tolist()))
        assert ours == theirs


def test_bcc_cu_explore_through_the_batched_engine_matches_the_ase_path(cu_bcc):
    ase_path = break_symmetry(cu_bcc, "emt", engine="ase", progress=False)
    with pytest.warns(UserWarning, match="cannot evaluate batches"):  # FIRE, as on CUDA
        batched = break_symmetry(cu_bcc, "emt", engine="batched", engine_options={"optimizer": "fire"},
                                 progress=False)
    assert [p.name for p in batched.phases] == [p.name for p in ase_path.phases]
    assert "Fm-3m (225)" in [p.name for p in batched.phases]
    for a, b in zip(ase_path.phases, batched.phases):
        assert abs(a.delta_energy_per_atom_eV - b.delta_energy_per_atom_eV) < 5e-4
        assert a.n_variants == b.n_variants and a.spontaneous == b.spontaneous
    # one after the other, a relaxation may stop at a phase an earlier one found (merged) when
    # that phase is no more symmetric than its target; in one batch they all run together:
    # both reach the same phases, which list every target. The Fmmm targets reach the more
    # symmetric I4/mmm and fcc ends of the I4/mmm targets, and run to their own ends.
    reached = [["broken" if r.status == "merged" else r.status for r in ex.relaxations] for ex in (batched, ase_path)]
    assert reached[0] == reached[1]
    assert all(r.status == "broken" for r in ase_path.relaxations if r.target.startswith("Fmmm"))
    assert [p.targets for p in batched.phases] == [p.targets for p in ase_path.phases]
    da, db = ase_path.as_dict(), batched.as_dict()
    assert da.keys() == db.keys() and da["relaxations"][0].keys() == db["relaxations"][0].keys()
    assert set(batched.relaxations[0].steps) <= set(ase_path.relaxations[0].steps) | {"release"}
    assert all(r.converged for r in batched.relaxations)


def test_bad_input_devices_and_jobs(cu_bcc):
    if not torch.cuda.is_available():
        with pytest.raises(SBSInputError, match="CUDA is not available"):
            Engine(EMT(), device="cuda")
        with pytest.raises(SBSInputError, match="CUDA is not available"):
            break_symmetry(cu_bcc, "emt", device="cuda", progress=False)
        with pytest.warns(UserWarning, match="CUDA is not available"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*cannot evaluate batches")
            engine = Engine(EMT(), device="auto")
        assert engine.device.type == "cpu"
    with pytest.raises(SBSInputError, match="engine must be"):
        break_symmetry(cu_bcc, "emt", engine="gpu-please", progress=False)
    with pytest.raises(SBSInputError, match="optimizer must be"):
        Engine(EMT(), optimizer="lbfgs")
    with pytest.warns(UserWarning, match="cannot evaluate batches"):
        assert Engine(EMT(), optimizer="auto").optimizer == ("fire" if torch.cuda.is_available() else "bfgs")
    with pytest.raises(SBSInputError, match="unknown device"):
        Engine(EMT(), device="tpu")
    with pytest.warns(UserWarning, match="cannot evaluate batches"):
        engine = Engine(EMT())
    slab = cu_bcc.copy()
    slab.pbc = [True, True, False]
    with pytest.raises(SBSInputError, match="pbc"):
        engine.relax([RelaxJob(slab, [Stage(0.0, 0.01, 5)])])
    with pytest.raises(SBSInputError, match="at least one stage"):
        engine.relax([RelaxJob(cu_bcc.copy(), [])])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_engine_on_cuda_follows_the_cpu_engine():
    atoms = strained_cu()
    cpu = quiet_relax([RelaxJob(atoms.copy(), [Stage(0.0, 1e-12, 20)])])[0]
    gpu = quiet_relax([RelaxJob(atoms.copy(), [Stage(0.0, 1e-12, 20)])], device="cuda")[0]
    assert np.abs(cpu.atoms.positions - gpu.atoms.positions).max() < 1e-8


def test_cli_explore_with_the_batched_engine_and_bench(tmp_path, capsys):
    import json

    from ase_sbs.cli import main

    from .conftest import EXAMPLES

    cu = str(EXAMPLES / "Cu_bcc.cif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["explore", cu, "--calc", "emt", "--engine", "batched", "--targets", "I4/mmm",
                     "--out", str(tmp_path / "ex"), "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["spacegroup_symbol"] for p in data["phases"]][0] == "Fm-3m"
    assert len(list((tmp_path / "ex" / "relaxations").glob("*.json"))) == 3  # parent + two signs of b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["bench", cu, "--calc", "emt", "--targets", "I4/mmm", "--paths", "batched", "--batch-atoms", "2",
                     "--sweep", "1,2", "--plot", str(tmp_path / "t.png"), "--json", str(tmp_path / "b.json")]) == 0
    text = capsys.readouterr().out
    bench = json.loads((tmp_path / "b.json").read_text())
    assert "floor (model only)" in text and bench["floor_s"] > 0 and bench["relaxations"] == 2
    assert sum(int(k) * v for k, v in bench["evaluations"].items()) == bench["structure_evaluations"]
    assert bench["batch_atoms"] == 2 and list(bench["evaluations"]) == ["1"]  # 2-atom cells, one per batch
    assert [r["batch"] for r in bench["sweep"]] == [1, 2] and (tmp_path / "t.png").stat().st_size > 1000
    assert main(["bench", cu, "--calc", "emt", "--supercell", "0", "1", "1"]) == 2
    assert main(["bench", cu, "--calc", "emt", "--paths", "gpu"]) == 2
    assert main(["bench", cu, "--calc", "emt", "--paths", "none"]) == 2  # nothing to time
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["bench", cu, "--calc", "emt", "--paths", "none", "--sweep", "1,3", "--json", "-"]) == 0
    sweep_only = json.loads(capsys.readouterr().out)
    assert "ase_s" not in sweep_only and [r["batch"] for r in sweep_only["sweep"]] == [1, 3]
    assert main(["explore", cu, "--calc", "emt", "--engine", "batched", "--batch-atoms", "0"]) == 2
    if not torch.cuda.is_available():
        assert main(["explore", cu, "--calc", "emt", "--device", "cuda", "--out", str(tmp_path / "x")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err or torch.cuda.is_available()


def test_batches_respect_the_atom_budget_and_halve_on_out_of_memory():
    from ase_sbs.potentials.batched import ASEBatched

    class SmallMemory(ASEBatched):
        """EMT that runs out of (simulated) GPU memory above two structures per batch."""

        def evaluate(self, graphs):
            if graphs.n_graphs > 2:
                raise torch.cuda.OutOfMemoryError("simulated")
            return super().evaluate(graphs)

    structures = [strained_cu(seed=s) for s in range(5)]  # 8 atoms each
    stages = [Stage(0.0, 0.05, 100)]
    alone = [quiet_relax([RelaxJob(a.copy(), stages)])[0] for a in structures]
    by_atoms = Engine(SmallMemory(EMT(), warn=False), limits=BatchLimits(max_atoms=20))
    assert by_atoms.plan([RelaxJob(a, stages) for a in structures]) == [[0, 1], [2, 3], [4]]
    res = by_atoms.relax([RelaxJob(a.copy(), stages) for a in structures])
    assert max(by_atoms.evaluations) == 2
    default = Engine(SmallMemory(EMT(), warn=False))  # on the CPU: CPU_BATCH_ATOMS atoms
    bigger = [RelaxJob(a.repeat((2, 2, 1)), stages) for a in structures]  # 32 atoms each
    assert CPU_BATCH_ATOMS == 64 and default.plan(bigger) == [[0, 1], [2, 3], [4]]
    oom = Engine(SmallMemory(EMT(), warn=False), limits=BatchLimits(max_atoms=10 ** 6))
    res_oom = oom.relax([RelaxJob(a.copy(), stages) for a in structures])
    assert max(oom.evaluations) == 2  # 5 -> 3 + 2 -> (2 + 1) + 2, then never more than 2
    for a, b, c in zip(alone, res, res_oom):
        assert b.steps == a.steps == c.steps
        assert np.abs(b.atoms.positions - a.atoms.positions).max() < 1e-10
        assert np.abs(c.atoms.positions - a.atoms.positions).max() < 1e-10
