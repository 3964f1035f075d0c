"""Data transform attaching SBS objects to frames (usable as ``_target_:`` in a dataset's
``transforms``).

Four sources for b (``sbs_object``, shape (1, dim) per frame; ``sbs_atom_object``,
shape (n_atoms, dim), for ``arrays``):

- ``info``: the frame already carries it (extxyz ``info``/``arrays`` read through the
  dataset's ``include_keys: [sbs_object]``); the transform checks its dimension.
- ``arrays``: per-atom objects b_i (supercells, translation breaking; for
  ``SBSBiasedModel(per_atom=True)``) that the frame carries in its ASE ``arrays``
  (``atoms.arrays['sbs_atom_object']``, (n_atoms, dim), read through the dataset's
  ``include_keys: [sbs_atom_object]``); the transform checks their shape.
- ``constant``: the same b for every frame (``object`` in the config).
- ``parent``: b is computed: the SBS of ``parent`` (a structure file) broken to
  ``target`` is built once; for each frame (the parent distorted into one variant, same
  atom order, any cell) the member is the one the bias favours,
  j* = argmax_j ⟨b_j, D(x_frame) − D(x_parent)⟩, with D the default
  :class:`ase_sbs.bias.BiasDescriptor` of the SBS irreps (the coupling the explorer
  relaxed with, so a variant found with b_j gets b_j back). A frame whose best and
  second-best overlaps tie (no distortion, or one the set cannot tell apart) is an error.

``strength`` (λ, eV) is attached too when given (``sbs_strength``, shape (1, 1)).
Errors are raised for the frame at hand with what to change in the config.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from nequip.data import AtomicDataDict

from ..bias.descriptor import BiasDescriptor, descriptor_of
from ..errors import SBSInputError
from .fields import SBS_ATOM_OBJECT_KEY, SBS_OBJECT_KEY, SBS_STRENGTH_KEY
from .models import parse_irreps

SOURCES = ("info", "arrays", "constant", "parent")


class AttachSBS(torch.nn.Module):
    """Attach ``sbs_object`` (and optionally ``sbs_strength``) to each frame.

    Args:
        irreps: e3nn irreps of the objects (must match the model's ``sbs_irreps``).
        source: ``info``, ``arrays`` (per-atom), ``constant`` or ``parent`` (see the module docstring).
        object: b for ``constant``.
        strength: λ in eV to attach (None: attach none).
        parent: structure file of the parent, for ``parent``.
        target: target subgroup of the parent (name/number, as ``ase-sbs sbs``), for ``parent``.
        symprec: symmetry tolerance (Å) for the parent, for ``parent``.
    """

    def __init__(self, irreps: str, source: str = "info", object: Optional[Sequence[float]] = None,
                 strength: Optional[float] = None, parent: Optional[str] = None, target=None,
                 symprec: float = 1e-3):
        super().__init__()
        self.irreps = parse_irreps(irreps, "AttachSBS irreps")
        from e3nn import o3

        self.dim = o3.Irreps(self.irreps).dim
        if source not in SOURCES:
            raise SBSInputError(f"AttachSBS source={source!r}: use one of {', '.join(SOURCES)}")
        self.source = source
        self.strength = None if strength is None else float(strength)
        self.object = None
        if source == "constant":
            if object is None or len(list(object)) != self.dim:
                raise SBSInputError(f"AttachSBS source=constant needs `object` with {self.dim} components "
                                    f"(irreps {self.irreps}), got {object!r}")
            self.object = np.asarray(list(object), dtype=np.float64)
        if source == "parent":
            self._init_parent(parent, target, symprec)

    def _init_parent(self, parent, target, symprec):
        from ase.io import read

        from ..sbs.sets import symmetry_breaking_set

        if parent is None or target is None:
            raise SBSInputError("AttachSBS source=parent needs `parent` (a structure file) and `target`")
        try:
            self.parent_atoms = read(parent)
        except Exception as exc:
            raise SBSInputError(f"AttachSBS: cannot read the parent structure {parent!r} ({exc})") from exc
        self.sbs = symmetry_breaking_set(self.parent_atoms, target, symprec=symprec)
        if parse_irreps(self.sbs.irreps) != self.irreps:
            raise SBSInputError(
                f"the SBS of {parent} broken to {target} has irreps {self.sbs.irreps}, but AttachSBS (and the "
                f"model) were given irreps {self.irreps}: set both to {self.sbs.irreps}"
            )
        self.descriptor = BiasDescriptor(self.sbs.irreps)
        self.parent_D = descriptor_of(self.parent_atoms, self.descriptor)

    def member_of(self, atoms) -> int:
        """Index j of the SBS member whose variant ``atoms`` is (``parent`` source)."""
        if len(atoms) != len(self.parent_atoms) or (atoms.numbers != self.parent_atoms.numbers).any():
            raise SBSInputError(
                f"a frame with {len(atoms)} atoms ({atoms.get_chemical_formula()}) is not a distortion of the "
                f"parent {self.parent_atoms.get_chemical_formula()} with the same atom order"
            )
        overlap = self.sbs.objects @ (descriptor_of(atoms, self.descriptor) - self.parent_D)
        order = np.argsort(overlap)[::-1]
        scale = max(np.abs(overlap).max(), 1e-300)
        if np.abs(overlap).max() < 1e-9 or overlap[order[0]] - overlap[order[1]] < 1e-6 * scale:
            raise SBSInputError(
                "cannot tell which SBS member this frame's distortion belongs to (overlaps "
                f"{np.round(overlap, 8).tolist()}): the frame is not distorted along this set's variants"
            )
        return int(order[0])

    def _frame_atoms(self, data):
        from ase import Atoms

        pos = data[AtomicDataDict.POSITIONS_KEY].detach().cpu().numpy().astype(np.float64)
        cell = data[AtomicDataDict.CELL_KEY].detach().cpu().numpy().reshape(3, 3).astype(np.float64)
        pbc = (data[AtomicDataDict.PBC_KEY].detach().cpu().numpy().reshape(3) if AtomicDataDict.PBC_KEY in data
               else False)
        if AtomicDataDict.ATOMIC_NUMBERS_KEY not in data:
            raise SBSInputError("AttachSBS source=parent needs atomic numbers: "
                                "put it before ChemicalSpeciesToAtomTypeMapper")
        z = data[AtomicDataDict.ATOMIC_NUMBERS_KEY].detach().cpu().numpy().reshape(-1)
        return Atoms(numbers=z, positions=pos, cell=cell, pbc=pbc)

    def _atom_objects(self, data: AtomicDataDict.Type) -> torch.Tensor:
        n_atoms = int(data[AtomicDataDict.POSITIONS_KEY].shape[0])
        if SBS_ATOM_OBJECT_KEY not in data:
            raise SBSInputError(
                f"a frame has no per-atom `{SBS_ATOM_OBJECT_KEY}`: write it into every frame's arrays "
                f"(atoms.arrays['{SBS_ATOM_OBJECT_KEY}'] = objects of shape ({n_atoms}, {self.dim})) and list it in "
                f"the dataset's `include_keys: [{SBS_ATOM_OBJECT_KEY}]`"
            )
        b = torch.as_tensor(data[SBS_ATOM_OBJECT_KEY])
        if b.numel() != n_atoms * self.dim or (b.dim() == 2 and b.shape[0] != n_atoms):
            raise SBSInputError(
                f"a frame's `{SBS_ATOM_OBJECT_KEY}` has shape {tuple(b.shape)} but the configured SBS irreps "
                f"{self.irreps} on its {n_atoms} atoms need ({n_atoms}, {self.dim}): one object of dimension "
                f"{self.dim} per atom"
            )
        return b.reshape(n_atoms, self.dim)

    def forward(self, data: AtomicDataDict.Type) -> AtomicDataDict.Type:
        dtype = data[AtomicDataDict.POSITIONS_KEY].dtype
        if self.source == "arrays":
            data[SBS_ATOM_OBJECT_KEY] = self._atom_objects(data).to(dtype)
            if self.strength is not None:
                data[SBS_STRENGTH_KEY] = torch.full((1, 1), self.strength, dtype=dtype)
            return data
        if self.source == "info":
            if SBS_OBJECT_KEY not in data:
                raise SBSInputError(
                    f"a frame has no `{SBS_OBJECT_KEY}`: list it in the dataset's `include_keys: [{SBS_OBJECT_KEY}]` "
                    "and write it into every frame's info, or use AttachSBS source=constant/parent"
                )
            b = torch.as_tensor(data[SBS_OBJECT_KEY])
            if b.numel() != self.dim:
                raise SBSInputError(
                    f"a frame's `{SBS_OBJECT_KEY}` has {b.numel()} components but the configured SBS irreps "
                    f"{self.irreps} need {self.dim}: the data carry other irreps than the model expects"
                )
            b = b.reshape(1, self.dim)
        elif self.source == "constant":
            b = torch.as_tensor(self.object).reshape(1, self.dim)
        else:
            j = self.member_of(self._frame_atoms(data))
            b = torch.as_tensor(self.sbs.objects[j]).reshape(1, self.dim)
        data[SBS_OBJECT_KEY] = b.to(dtype)
        if self.strength is not None:
            data[SBS_STRENGTH_KEY] = torch.full((1, 1), self.strength, dtype=dtype)
        return data
