"""SevenNet-0 on whole batches: the batched model equals the ASE calculator structure by
structure, and the BaTiO3 explore through the batched engine finds the phases of the
ASE path (the shared ``batio3_exploration`` fixture)."""

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.stress import voigt_6_to_full_3x3_stress

from ase_sbs import break_symmetry
from ase_sbs.potentials.batched import SevenNetBatched, batched_potential
from ase_sbs.relax.engine import Engine
from ase_sbs.relax.jobs import RelaxJob, Stage

from ..conftest import EXAMPLES, evaluate_as_batch_and_alone


def mixed_structures():
    from ase.io import read

    bto = read(EXAMPLES / "BaTiO3_cubic.cif")
    a = bto.copy()
    a.rattle(0.05, seed=1)
    b = bto * (2, 1, 1)
    b.rattle(0.04, seed=2)
    b.set_cell(np.asarray(b.cell) @ (np.eye(3) + [[0.01, 0.005, 0], [0.005, -0.01, 0], [0, 0, 0.02]]),
               scale_atoms=True)
    c = bulk("Sr", "fcc", a=6.0)
    c.rattle(0.05, seed=3)
    d = molecule("NH3")
    d.rattle(0.02, seed=4)
    return [a, b, c, d]


def test_sevennet_batch_equals_one_structure_at_a_time(sevennet):
    structures = mixed_structures()
    pot = batched_potential(sevennet)
    assert isinstance(pot, SevenNetBatched)
    engine = Engine(pot)
    # one engine round on the mixed batch: the stage budget is zero steps, so each
    # structure is evaluated once and reported with its energy
    results = engine.relax([RelaxJob(a.copy(), [Stage(0.0, 1e-9, 0)], cell="fixed") for a in structures])
    assert engine.evaluations == [4]
    energy, forces, stress = engine.evaluate_jobs([RelaxJob(a, [Stage(0.0, 1e-9, 0)]) for a in structures])
    start = 0
    for g, (a, r) in enumerate(zip(structures, results)):
        ref = a.copy()
        ref.calc = sevennet
        e = ref.get_potential_energy()
        assert abs(r.energy - e) < 1e-5 * max(1.0, abs(e)) and abs(float(energy[g]) - e) < 1e-5 * abs(e)
        f = forces[start:start + len(a)].numpy()
        start += len(a)
        assert np.abs(f - ref.get_forces()).max() < 2e-5
        if a.pbc.all():
            assert np.abs(stress[g].numpy() - voigt_6_to_full_3x3_stress(ref.get_stress())).max() < 1e-6
        else:
            assert np.abs(stress[g].numpy()).max() == 0.0


def test_batio3_batched_explore_matches_the_ase_path(batio3_exploration, sevennet, batio3):
    # FIRE, the engine's optimizer on CUDA (BFGS follows the ASE path step for step anyway)
    batched = break_symmetry(batio3, sevennet, targets="P4mm,Amm2,R3m", engine="batched",
                             engine_options={"optimizer": "fire"}, progress=False)
    ref = batio3_exploration
    assert [p.name for p in batched.phases] == [p.name for p in ref.phases]
    assert len(batched.phases) == 3
    for a, b in zip(ref.phases, batched.phases):
        assert abs(a.delta_energy_per_atom_eV - b.delta_energy_per_atom_eV) < 5e-4
        assert a.n_variants == b.n_variants and b.spontaneous
    assert abs(batched.parent.energy_per_atom - ref.parent.energy_per_atom) < 1e-5
    assert all(r.converged for r in batched.relaxations)


@pytest.mark.gpu
def test_sevennet_batch_on_cuda_equals_the_cpu_calculator(sevennet):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    structures = mixed_structures()
    evaluate_as_batch_and_alone(Engine(sevennet, device="cuda"), structures, sevennet, 1e-4)
