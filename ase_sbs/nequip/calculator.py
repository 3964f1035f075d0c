"""NequIP's ASE calculator with SBS inputs, and the ``ase_sbs`` compile target.

``nequip-compile --mode aotinductor --target ase_sbs`` exports a model whose inputs are
NequIP's ASE inputs plus ``sbs_object`` and ``sbs_strength``, so one compiled file serves
every b and λ; :class:`SBSNequIPCalculator` feeds them from its own settings or from
``atoms.info``. A model compiled with NequIP's standard ``--target ase`` uses the
b and λ fixed at build time and runs in the stock ``NequIPCalculator``.

Models compiled for the batch targets (NequIP's ``batch``, ase_sbs's ``batch_sbs``: one
b and λ per frame) take any number of frames at once; :func:`load_calculator` gives them
:class:`BatchNequIPCalculator` / :class:`SBSBatchNequIPCalculator` (a single frame runs
as a batch of two copies, see ``_BatchInputs``), and the batched engine
(:mod:`ase_sbs.batched`) evaluates whole batches through them.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from nequip.data import AtomicDataDict
from nequip.integrations.ase import NequIPCalculator

from ..errors import SBSInputError
from .compile_targets import SBS_BATCH_COMPILE_TARGET, SBS_COMPILE_TARGET  # noqa: F401  (registers them)
from .fields import SBS_ATOM_OBJECT_KEY, SBS_OBJECT_KEY, SBS_STRENGTH_KEY


@contextmanager
def nequip_data_dtype():
    """torch's default dtype set to float64, NequIP's data dtype, for the duration.

    NequIP's ``from_ase`` builds positions and cells in torch's default dtype, which NequIP
    sets to float64 once per process; code that resets it (a library, a test harness)
    would make NequIP feed float32 data to a float64 model (silently wrong for compiled
    models)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class Float64NequIPCalculator(NequIPCalculator):
    """``NequIPCalculator`` whose inputs are built in float64 whatever torch's default
    dtype is at call time (see :func:`nequip_data_dtype`)."""

    def atoms_to_data(self, atoms):
        with nequip_data_dtype():
            return super().atoms_to_data(atoms)


class SBSNequIPCalculator(Float64NequIPCalculator):
    """``NequIPCalculator`` that adds ``sbs_object`` b and ``sbs_strength`` λ (eV) to the
    model input: ``atoms.info['sbs_object']`` / ``['sbs_strength']`` when present, else
    the values given here (λ = 0 when none: the unbiased model).

    Per-atom objects b_i (models built with ``SBSBiasedModel(per_atom=True)``) come from
    ``atoms.arrays['sbs_atom_object']`` (n_atoms, dim) when present, else from
    ``sbs_atom_object`` given here (n_atoms, dim); they are fed as the node field
    ``sbs_atom_object`` (the per-frame b is then optional).

    Load a model compiled with ``--target ase_sbs`` with
    ``SBSNequIPCalculator.from_compiled_model(path, sbs_object=..., sbs_strength=...)``,
    or a package/checkpoint with ``SBSNequIPCalculator._from_saved_model(...)``.
    """

    @classmethod
    def _get_aoti_compile_target(cls):
        from nequip.scripts._compile_utils import COMPILE_TARGET_DICT

        return COMPILE_TARGET_DICT[SBS_COMPILE_TARGET]

    def __init__(self, model, device, sbs_object=None, sbs_strength: float = 0.0, sbs_atom_object=None, **kwargs):
        """``sbs_object``: default b (numbers, or None: every atoms must carry one in info);
        ``sbs_strength``: default λ in eV; ``sbs_atom_object``: default per-atom objects
        (n_atoms, dim), for per-atom models."""
        super().__init__(model, device, **kwargs)
        self.sbs_object = None if sbs_object is None else np.asarray(sbs_object, dtype=np.float64).reshape(-1)
        self.sbs_strength = float(sbs_strength)
        if sbs_atom_object is not None:
            sbs_atom_object = np.asarray(sbs_atom_object, dtype=np.float64)
            if sbs_atom_object.ndim != 2:
                raise SBSInputError(f"sbs_atom_object must have shape (n_atoms, dim), got {sbs_atom_object.shape}")
        self.sbs_atom_object = sbs_atom_object

    def check_state(self, atoms, tol=1e-15):
        """ASE's changes, plus ``sbs`` when the SBS inputs carried by the atoms changed
        (ASE compares positions, cell, numbers only, so it would return a stale result)."""
        changes = super().check_state(atoms, tol)
        if self.atoms is not None and not changes:
            old_new = [(self.atoms.arrays.get(SBS_ATOM_OBJECT_KEY), atoms.arrays.get(SBS_ATOM_OBJECT_KEY))]
            old_new += [(self.atoms.info.get(k), atoms.info.get(k)) for k in (SBS_OBJECT_KEY, SBS_STRENGTH_KEY)]
            for old, new in old_new:
                if (old is None) != (new is None) or (
                        old is not None and (np.shape(old) != np.shape(new) or not np.array_equal(old, new))):
                    return changes + ["sbs"]
        return changes

    def atoms_to_data(self, atoms):
        data = super().atoms_to_data(atoms)
        dtype = data[AtomicDataDict.POSITIONS_KEY].dtype
        b_atoms = atoms.arrays.get(SBS_ATOM_OBJECT_KEY, self.sbs_atom_object)
        if b_atoms is not None:
            b_atoms = np.asarray(b_atoms, dtype=np.float64)
            if b_atoms.ndim != 2 or len(b_atoms) != len(atoms):
                raise SBSInputError(
                    f"per-atom SBS objects of shape {b_atoms.shape} for {len(atoms)} atoms: give one object per "
                    f"atom, shape ({len(atoms)}, dim), in the same atom order"
                )
            data[SBS_ATOM_OBJECT_KEY] = torch.as_tensor(b_atoms, dtype=dtype, device=self.device)
        b = atoms.info.get(SBS_OBJECT_KEY, self.sbs_object)
        if b is None and b_atoms is None:
            raise SBSInputError(
                f"no SBS object: give sbs_object= (or sbs_atom_object= for per-atom models) to the calculator, "
                f"or atoms.info['{SBS_OBJECT_KEY}'] (atoms.arrays['{SBS_ATOM_OBJECT_KEY}'])"
            )
        lam = float(atoms.info.get(SBS_STRENGTH_KEY, self.sbs_strength))
        if b is not None:
            data[SBS_OBJECT_KEY] = torch.as_tensor(np.asarray(b, dtype=np.float64).reshape(1, -1), dtype=dtype,
                                                   device=self.device)
        data[SBS_STRENGTH_KEY] = torch.full((1, 1), lam, dtype=dtype, device=self.device)
        return data


class _BatchInputs:
    """Feeds the batch fields (``batch``, ``num_atoms``) that models compiled for a batch
    target take. NequIP compiles those targets from a two-frame example, and the compiled
    model fails on a single frame (AOTInductor, torch 2.13: "index out of bounds"), so a
    single frame is evaluated as a batch of the frame twice and the first copy returned."""

    def atoms_to_data(self, atoms):
        return AtomicDataDict.with_batch_(super().atoms_to_data(atoms))

    def call_model(self, data):
        if data[AtomicDataDict.NUM_NODES_KEY].numel() != 1:
            return super().call_model(data)
        n = data[AtomicDataDict.POSITIONS_KEY].shape[0]
        out = super().call_model(AtomicDataDict.batched_from_list([data, data]))
        return {k: v[:n] if v.shape[0] == 2 * n else v[:1] for k, v in out.items()}  # node or frame fields


class BatchNequIPCalculator(_BatchInputs, Float64NequIPCalculator):
    """``NequIPCalculator`` for a model compiled with NequIP's ``--target batch``."""

    @classmethod
    def _get_aoti_compile_target(cls):
        from nequip.scripts._compile_utils import AOTI_BATCH_TARGET, COMPILE_TARGET_DICT

        return COMPILE_TARGET_DICT[AOTI_BATCH_TARGET]


class SBSBatchNequIPCalculator(_BatchInputs, SBSNequIPCalculator):
    """:class:`SBSNequIPCalculator` for a model compiled with ``--target batch_sbs``."""

    @classmethod
    def _get_aoti_compile_target(cls):
        from nequip.scripts._compile_utils import COMPILE_TARGET_DICT

        return COMPILE_TARGET_DICT[SBS_BATCH_COMPILE_TARGET]


def compiled_metadata(path: str) -> dict:
    """The metadata stored in an AOTInductor-compiled NequIP model (``*.nequip.pt2``)."""
    return dict(torch._inductor.aoti_load_package(str(path)).get_metadata())


def load_calculator(path: str, device="cpu", sbs_object=None, sbs_strength: float = 0.0, sbs_atom_object=None):
    """An ASE calculator for a NequIP model file (package, checkpoint or compiled).

    Models that take b and λ as inputs (packages and checkpoints of ase_sbs models, files
    compiled with ``--target ase_sbs``) get :class:`SBSNequIPCalculator` with the given
    b and λ (b = 0 and λ = 0 by default: the unbiased model); every other model gets
    NequIP's ``NequIPCalculator`` as :class:`Float64NequIPCalculator` (a biased model
    compiled with ``--target ase`` keeps the b and λ fixed at build time). Files compiled
    for a batch target (``batch``, ``batch_sbs``) get the batch forms of these calculators.
    """
    from e3nn import o3
    from nequip.utils.aoti_metadata import NEQUIP_AOTI_INPUTS_KEY, parse_aoti_keys

    from .modules import SBS_IRREPS_METADATA_KEY

    path = str(path)
    if not path.endswith(".pt2"):
        calc = SBSNequIPCalculator._from_saved_model(path, device=device, sbs_object=sbs_object,
                                                     sbs_strength=sbs_strength, sbs_atom_object=sbs_atom_object)
        irreps = calc.model.metadata.get(SBS_IRREPS_METADATA_KEY)
        if irreps is None:  # a plain NequIP model: no SBS fields to feed
            return Float64NequIPCalculator(calc.model, device=device, transforms=calc.transforms)
        if calc.sbs_object is None:
            calc.sbs_object = np.zeros(o3.Irreps(irreps).dim)
        return calc
    meta = compiled_metadata(path)
    inputs = parse_aoti_keys(meta[NEQUIP_AOTI_INPUTS_KEY]) if NEQUIP_AOTI_INPUTS_KEY in meta else []
    batch = AtomicDataDict.BATCH_KEY in inputs  # compiled for a batch target
    if SBS_OBJECT_KEY not in inputs:
        return (BatchNequIPCalculator if batch else Float64NequIPCalculator).from_compiled_model(path, device=device)
    if sbs_object is None:
        if SBS_IRREPS_METADATA_KEY not in meta:
            raise SBSInputError(f"{path} takes an SBS object but does not record its irreps: give sbs_object")
        sbs_object = np.zeros(o3.Irreps(meta[SBS_IRREPS_METADATA_KEY]).dim)
    cls = SBSBatchNequIPCalculator if batch else SBSNequIPCalculator
    return cls.from_compiled_model(path, device=device, sbs_object=sbs_object, sbs_strength=sbs_strength,
                                   sbs_atom_object=sbs_atom_object)
