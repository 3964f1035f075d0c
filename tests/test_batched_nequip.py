"""A NequIP-framework model evaluated on whole batches equals NequIPCalculator structure by
structure, and relaxes through the engine as through ASE (a tiny random NequIPGNNModel)."""

import warnings

import numpy as np
import pytest
from ase.build import bulk

from .conftest import evaluate_as_batch_and_alone

pytestmark = pytest.mark.usefixtures("nequip_dtype")  # NequIP data in float64 (tests/conftest.py)


@pytest.fixture(scope="module")
def nequip_calc():
    import torch

    dtype = torch.get_default_dtype()  # set_global_state makes float64 the default: restore it afterwards
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nequip.utils.global_state import set_global_state

        set_global_state()
        from nequip.integrations.ase import NequIPCalculator
        from nequip.integrations.utils import basic_transforms
        from nequip.model import NequIPGNNModel

        model = NequIPGNNModel(seed=0, model_dtype="float64", r_max=4.0, type_names=["Cu", "Au"], num_layers=2,
                               l_max=1, num_features=8, radial_mlp_width=16, avg_num_neighbors=20.0,
                               per_type_energy_shifts={"Cu": -3.0, "Au": -4.0})
        model.eval()
        calc = NequIPCalculator(model=model, device="cpu",
                                transforms=basic_transforms(model.metadata, 4.0, ["Cu", "Au"],
                                                            {"Cu": "Cu", "Au": "Au"}))
    yield calc
    torch.set_default_dtype(dtype)


def test_nequip_batch_equals_the_calculator_structure_by_structure(nequip_calc):
    import torch

    from ase_sbs.potentials.batched import NequIPBatched, batched_potential
    from ase_sbs.relax.engine import Engine
    from ase_sbs.relax.jobs import RelaxJob, Stage

    a = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    a[0].symbol = "Au"
    b = bulk("Au", "fcc", a=4.1, cubic=True)
    c = bulk("Cu", "bcc", a=2.9)
    structures = [a, b, c]
    for k, s in enumerate(structures):
        s.rattle(0.05, seed=k)
    pot = batched_potential(nequip_calc)
    assert isinstance(pot, NequIPBatched)
    engine = Engine(pot)
    energy, forces, stress = evaluate_as_batch_and_alone(engine, structures, nequip_calc, 1e-9, stress_tol=1e-9)
    assert np.abs(forces.numpy()).max() > 1e-3  # a real, non-trivial model
    pot.batched = False  # one frame at a time (what a compiled model specialized to one frame falls back to)
    again = engine.evaluate_jobs([RelaxJob(s, [Stage(0.0, 1e-9, 0)]) for s in structures])
    for x, y in zip(again[:3], (energy, forces, stress)):
        assert torch.allclose(x, y, atol=1e-10, rtol=0)
    pot.batched = True
    # a relaxation through the engine (BFGS) ends where ASE's BFGS ends
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    ref = a.copy()
    ref.calc = nequip_calc
    opt = BFGS(FrechetCellFilter(ref), logfile=None, maxstep=0.1)
    opt.run(fmax=0.01, steps=40)
    res = Engine(pot, optimizer="bfgs").relax([RelaxJob(a.copy(), [Stage(0.0, 0.01, 40)])])[0]
    assert res.steps == [opt.nsteps]
    assert np.abs(res.atoms.positions - ref.positions).max() < 1e-7
