"""The paper's BaTiO3 experiment with the example NequIP config (tiny, CPU): trained on
ONE (cubic parent, b) → P4mm-variant pair found by the explorer with SevenNet-0, the
SBS-conditioned NequIP GNN given each of the six polar objects returns the six P4mm
variants."""

import importlib.util
import os
import subprocess

import numpy as np
import pytest
import spglib
import torch
from ase.io import write

from ase_sbs import detect_symmetry, symmetry_breaking_set
from ase_sbs.explore.classify import variant_image

from ..conftest import EXAMPLES

pytest.importorskip("nequip")
pytestmark = pytest.mark.usefixtures("nequip_dtype")  # NequIP data in float64 (tests/conftest.py)

TYPES = ["Ba", "Ti", "O"]
TINY = ["num_features=8", "num_layers=2", "radial_mlp_width=16", "max_epochs=150", "lr=0.02"]


def _example_module():
    spec = importlib.util.spec_from_file_location("make_batio3_dataset", EXAMPLES / "nequip" / "make_batio3_dataset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _env():
    root = str(EXAMPLES.parent)
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def _predict(model, parent, b):
    from nequip.data import from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )

    d = from_ase(parent)
    d = ChemicalSpeciesToAtomTypeMapper(TYPES, chemical_species_to_atom_type_map={t: t for t in TYPES})(d)
    d = NeighborListTransform(r_max=5.0)(d)
    d["sbs_object"] = torch.as_tensor(np.asarray(b, dtype=np.float64)).reshape(1, -1)
    return model(d)["sbs_displacements"].detach().numpy()


def _same_structure(a, b, tol=1e-6) -> bool:
    """Same cell; every atom of ``a`` has an atom of ``b`` of its species within ``tol`` Å (PBC)."""
    fa, fb, cell = a.get_scaled_positions(), b.get_scaled_positions(), np.asarray(a.cell)
    for i, f in enumerate(fa):
        d = fb - f
        d -= np.round(d)
        dist = np.linalg.norm(d @ cell, axis=1)
        j = int(np.argmin(dist))
        if dist[j] > tol or a.numbers[i] != b.numbers[j]:
            return False
    return True


@pytest.fixture(scope="module")
def trained(batio3_exploration, tmp_path_factory):
    ex_mod = _example_module()
    frames = ex_mod.pair_frames(batio3_exploration, "P4mm")
    assert frames, "the explorer found no P4mm variant"
    data = tmp_path_factory.mktemp("sbs_gnn")
    write(data / "train.extxyz", frames[:1], format="extxyz")
    run = data / "run"
    cmd = ["nequip-train", "-cp", str(EXAMPLES / "nequip"), "-cn", "batio3_sbs_gnn", f"data_dir={data}",
           f"hydra.run.dir={run}", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from nequip.model.saved_models import ModelFromCheckpoint
    from nequip.utils.global_state import set_global_state

    set_global_state()
    model = ModelFromCheckpoint(str(run / "last.ckpt"))
    model = model["sole_model"] if isinstance(model, torch.nn.ModuleDict) else model
    model.eval()
    return model, frames[0], batio3_exploration.parent.atoms


def test_trained_model_gives_every_p4mm_variant(trained):
    model, frame, parent = trained
    sbs = symmetry_breaking_set(parent, "P4mm")
    assert sbs.irreps == "1o" and len(sbs) == 6
    b_train = frame.info["sbs_object"]
    j_train = int(np.argmin(np.abs(sbs.objects - b_train).max(axis=1)))
    assert np.allclose(sbs.objects[j_train], b_train, atol=1e-6)

    # it learned the pair it was trained on
    u_true = frame.arrays["sbs_displacements"]
    u_fit = _predict(model, parent, b_train)
    assert np.abs(u_true).max() > 0.02
    assert np.abs(u_fit - u_true).max() < 0.1 * np.abs(u_true).max()

    psym = detect_symmetry(parent)
    ti, ba = parent.get_chemical_symbols().index("Ti"), parent.get_chemical_symbols().index("Ba")
    polarity = np.dot(u_true[ti] - u_true[ba], b_train)
    outputs = []
    for j, b in enumerate(sbs.objects):
        out = parent.copy()
        out.positions += _predict(model, parent, b)
        outputs.append(out)
        ds = spglib.get_symmetry_dataset((out.cell[:], out.get_scaled_positions(), out.numbers), symprec=1e-3)
        assert ds.international == "P4mm", (j, ds.international)
        # the polar (4-fold) axis is b_j: every rotation of the output fixes b_j
        L = np.asarray(out.cell)
        cart = [L.T @ R @ np.linalg.inv(L.T) for R in ds.rotations]
        assert len(cart) == 8 and all(np.allclose(g @ b, b, atol=1e-8) for g in cart)
        # and points the way of the trained variant
        u = out.positions - parent.positions
        assert np.sign(np.dot(u[ti] - u[ba], b)) == np.sign(polarity)

    # the six outputs are images of each other under the cubic group: output_j = s_j · output_0
    for j, s in enumerate(sbs.coset_representatives):
        ops = np.flatnonzero(psym.operations.point_index == s)
        assert any(_same_structure(variant_image(outputs[0], psym, k), outputs[j]) for k in ops), j


def test_attach_sbs_recovers_member_of_explored_variant(batio3_exploration):
    """AttachSBS(source=parent) gives each explored P4mm variant the object it was found with."""
    import ase_sbs.nequip as sn

    t = sn.AttachSBS("1o", source="parent", parent=str(EXAMPLES / "BaTiO3_cubic.cif"), target="P4mm")
    found = [r for r in batio3_exploration.relaxations if r.status == "broken" and r.spacegroup_symbol == "P4mm"]
    assert found
    for r in found:
        assert np.allclose(t.sbs.objects[t.member_of(r.atoms)], r.sbs_object, atol=1e-6)
