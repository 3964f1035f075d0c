"""NequIP graph modules: the E_sb energy term and the SBS node embedding.

Both read the per-frame SBS object b (``sbs_object``, (n_frames, dim)) and are exactly
equivariant: under g ∈ O(3) acting on positions, cell and b (b → D(g) b), E_sb and the
initial node features transform as they should (scalars invariant, vectors rotated).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from e3nn import o3
from nequip.data import AtomicDataDict
from nequip.nn import GraphModuleMixin
from nequip.nn.utils import with_edge_vectors_

from ..bias.descriptor import BiasDescriptor, atom_bias_energies
from .fields import SBS_ATOM_OBJECT_KEY, SBS_OBJECT_KEY, SBS_STRENGTH_KEY

SBS_IRREPS_METADATA_KEY = "sbs_irreps"  # model metadata (also in compiled files): the irreps of b
SBS_PER_ATOM_METADATA_KEY = "sbs_per_atom"  # model metadata: "1" when b is per atom (sbs_atom_object)


def _per_atom(values: torch.Tensor, data: AtomicDataDict.Type, n_atoms: int) -> torch.Tensor:
    """Broadcast a per-frame tensor (n_frames, k) to atoms (n_atoms, k)."""
    if AtomicDataDict.BATCH_KEY in data:
        return torch.index_select(values, 0, data[AtomicDataDict.BATCH_KEY])
    return values[0:1].expand(n_atoms, values.shape[1])


def _check_object(b: torch.Tensor, dim: int, irreps: str) -> None:
    if b.shape[-1] != dim:
        raise ValueError(
            f"the data's `{SBS_OBJECT_KEY}` has {b.shape[-1]} components per frame but the model's SBS irreps "
            f"{irreps} have dimension {dim}: attach objects of these irreps (ase_sbs.nequip.AttachSBS(irreps=...)) "
            "or build the model with the irreps the data carry"
        )


def _check_atom_object(b: torch.Tensor, dim: int, irreps: str, n_atoms: int) -> None:
    if b.dim() != 2 or b.shape[0] != n_atoms or b.shape[1] != dim:
        raise ValueError(
            f"the data's `{SBS_ATOM_OBJECT_KEY}` has shape {tuple(b.shape)} but this per-atom SBS model needs "
            f"({n_atoms}, {dim}): one object of irreps {irreps} (dimension {dim}) per atom; attach them with "
            "ase_sbs.nequip.AttachSBS(irreps=..., source='arrays') or SBSNequIPCalculator(sbs_atom_object=...)"
        )


class SBSBiasEnergy(GraphModuleMixin, torch.nn.Module):
    """Adds E_sb = −λ ⟨b, D(x)⟩ (eV) to ``per_atom_energy`` and ``total_energy``.

    D is :class:`ase_sbs.bias.BiasDescriptor` evaluated on the model's own edges (edges
    longer than ``cutoff`` contribute exactly zero), split into per-atom terms:
    e_i = −λ_{f(i)} ⟨b_{f(i)}, out_i⟩ with f(i) the frame of atom i, Σ_i e_i = E_sb.
    b and λ come from the data (``sbs_object``, ``sbs_strength``) when present, else from
    the defaults fixed at build time (so a model compiled with NequIP's standard ASE
    inputs carries its bias inside). Forces and stress follow from the enclosing
    ``ForceStressOutput`` by autograd, through positions and cell.

    With ``per_atom`` the object is per atom (supercells, translation breaking): b_i from
    the node field ``sbs_atom_object`` (n_atoms, dim), required in the data, and
    E_sb = −λ Σ_i ⟨b_i, D_i(x)⟩ with D_i the same per-atom terms out_i
    (``BiasDescriptor.forward(per_atom=True)``, as ``ase_sbs.bias.sb_energy``), so
    e_i = −λ_{f(i)} ⟨b_i, out_i⟩. Joint symmetry: rotating x and every b_i by g and
    permuting atoms together leaves E_sb unchanged.

    Args:
        sbs_irreps: e3nn irreps of b (of each b_i with ``per_atom``).
        type_numbers: atomic number Z of each model type (the descriptor's species weights).
        default_object: b used when the data carry none (zeros when None).
        default_strength: λ (eV) used when the data carry none.
        cutoff, n_radial, seed: of the descriptor (same values, same D as ``ase_sbs.bias``).
        per_atom: read per-atom objects b_i from ``sbs_atom_object`` (no default object).
    """

    def __init__(self, sbs_irreps: str, type_numbers: Sequence[int], default_object: Optional[Sequence[float]] = None,
                 default_strength: float = 0.0, cutoff: float = 5.0, n_radial: int = 4, seed: int = 0,
                 per_atom: bool = False, irreps_in=None):
        super().__init__()
        self.sbs_irreps = str(o3.Irreps(sbs_irreps).simplify())
        self.dim = o3.Irreps(self.sbs_irreps).dim
        self.per_atom = bool(per_atom)
        if self.per_atom and default_object is not None:
            raise ValueError("per-atom SBS objects come from the data (`sbs_atom_object`): give no default_object")
        object_key = SBS_ATOM_OBJECT_KEY if self.per_atom else SBS_OBJECT_KEY
        self._init_irreps(
            irreps_in=irreps_in,
            my_irreps_in={object_key: self.sbs_irreps, SBS_STRENGTH_KEY: "0e"},
            required_irreps_in=[AtomicDataDict.PER_ATOM_ENERGY_KEY, AtomicDataDict.TOTAL_ENERGY_KEY],
        )
        dtype = torch.get_default_dtype()
        self.descriptor = BiasDescriptor(self.sbs_irreps, cutoff=cutoff, n_radial=n_radial, seed=seed).to(dtype)
        self.register_buffer("type_numbers", torch.as_tensor(list(type_numbers), dtype=torch.long))
        obj = torch.zeros(self.dim) if default_object is None else torch.as_tensor(default_object, dtype=dtype)
        self.register_buffer("default_object", obj.to(dtype).reshape(1, self.dim))
        self.register_buffer("default_strength", torch.full((1, 1), float(default_strength), dtype=dtype))

    def forward(self, data: AtomicDataDict.Type) -> AtomicDataDict.Type:
        data = with_edge_vectors_(data, with_lengths=False)
        vectors = data[AtomicDataDict.EDGE_VECTORS_KEY]
        edge_index = data[AtomicDataDict.EDGE_INDEX_KEY]
        z = torch.index_select(self.type_numbers, 0, data[AtomicDataDict.ATOM_TYPE_KEY].view(-1))
        n_atoms = AtomicDataDict.num_nodes(data)
        dtype = vectors.dtype
        if self.per_atom:
            if SBS_ATOM_OBJECT_KEY not in data:
                raise ValueError(
                    f"this per-atom SBS model needs `{SBS_ATOM_OBJECT_KEY}` (one object per atom) in its input: "
                    "attach it to each frame (ase_sbs.nequip.AttachSBS(source='arrays')) or pass it to the "
                    "calculator (SBSNequIPCalculator(sbs_atom_object=...))"
                )
            b_i = data[SBS_ATOM_OBJECT_KEY]
            _check_atom_object(b_i, self.dim, self.sbs_irreps, n_atoms)
            b_i = b_i.to(dtype)
        elif SBS_OBJECT_KEY in data:
            b = data[SBS_OBJECT_KEY]
            _check_object(b, self.dim, self.sbs_irreps)
            b_i = _per_atom(b.to(dtype), data, n_atoms)
        else:  # the build-time b, the same for every frame of a batch
            b_i = self.default_object.to(dtype).expand(n_atoms, self.dim)
        if SBS_STRENGTH_KEY in data:
            lam_i = _per_atom(data[SBS_STRENGTH_KEY].to(dtype).reshape(-1, 1), data, n_atoms)
        else:
            lam_i = self.default_strength.to(dtype).expand(n_atoms, 1)
        e_i = atom_bias_energies(self.descriptor, vectors, edge_index[0], edge_index[1], z, b_i,
                                 lam_i.reshape(-1)).unsqueeze(1)
        e_atom = data[AtomicDataDict.PER_ATOM_ENERGY_KEY]
        data[AtomicDataDict.PER_ATOM_ENERGY_KEY] = e_atom + e_i.to(e_atom.dtype)
        total = data[AtomicDataDict.TOTAL_ENERGY_KEY]
        if AtomicDataDict.BATCH_KEY in data:
            e_frame = torch.zeros_like(total).index_add(0, data[AtomicDataDict.BATCH_KEY], e_i.to(total.dtype))
        else:
            e_frame = e_i.sum(dim=0, keepdim=True).to(total.dtype).reshape(total.shape)
        data[AtomicDataDict.TOTAL_ENERGY_KEY] = total + e_frame
        return data


class SBSNodeEmbed(GraphModuleMixin, torch.nn.Module):
    """Initial node features of the SBS-conditioned GNN: h_i = [s_i ; W (s_i ⊗ b_{f(i)})].

    s_i are the scalar type embeddings (``node_features``, n×0e); b is the frame's SBS
    object; ⊗ is e3nn's fully connected tensor product into ``irreps_mix`` (learnable
    weights, one path per (0e, ir_b) → ir_b). The result is a function of (species, b)
    that is exactly equivariant: h_i(D(g) b) = D_h(g) h_i(b). Every atom sees b, so the
    network downstream is a function of (structure, b), jointly equivariant.
    """

    def __init__(self, sbs_irreps: str, mix_multiplicity: int = 8, irreps_in=None):
        super().__init__()
        self.sbs_irreps = str(o3.Irreps(sbs_irreps).simplify())
        self.dim = o3.Irreps(self.sbs_irreps).dim
        scalars = o3.Irreps(irreps_in[AtomicDataDict.NODE_FEATURES_KEY])
        irreps_b = o3.Irreps(self.sbs_irreps)
        irreps_mix = o3.Irreps([(mix_multiplicity, ir) for _, ir in irreps_b]).simplify()
        out = (scalars + irreps_mix).simplify()
        self._init_irreps(
            irreps_in=irreps_in,
            my_irreps_in={SBS_OBJECT_KEY: self.sbs_irreps},
            required_irreps_in=[AtomicDataDict.NODE_FEATURES_KEY],
            irreps_out={AtomicDataDict.NODE_FEATURES_KEY: out},
        )
        self.scalars = scalars
        self.tp = o3.FullyConnectedTensorProduct(scalars, irreps_b, irreps_mix)
        self.n_scalars = scalars.dim

    def forward(self, data: AtomicDataDict.Type) -> AtomicDataDict.Type:
        if SBS_OBJECT_KEY not in data:
            raise ValueError(
                f"this SBS-conditioned model needs `{SBS_OBJECT_KEY}` in its input: attach it to each frame "
                "(ase_sbs.nequip.AttachSBS) or pass it to the calculator (SBSNequIPCalculator(sbs_object=...))"
            )
        s = data[AtomicDataDict.NODE_FEATURES_KEY]
        b = data[SBS_OBJECT_KEY]
        _check_object(b, self.dim, self.sbs_irreps)
        b_i = _per_atom(b.to(s.dtype), data, s.shape[0])
        data[AtomicDataDict.NODE_FEATURES_KEY] = torch.cat([s, self.tp(s, b_i)], dim=1)
        return data
