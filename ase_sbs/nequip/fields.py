"""Data fields of the NequIP extension, registered with NequIP's field registry.

Per frame (graph fields, shape ``(n_frames, ...)`` once batched):

- ``sbs_object``   (n_frames, dim(irreps)) : the symmetry-breaking object b, in e3nn's
  basis of the irreps named by the model/transform (``1o`` is plain (x, y, z)).
- ``sbs_strength`` (n_frames, 1)           : λ of E_sb = −λ ⟨b, D(x)⟩, in eV.

Per atom (node fields, shape ``(n_atoms, ...)``):

- ``sbs_displacements`` (n_atoms, 3) : the per-atom displacement vectors u_i (Å) that the
  SBS-conditioned GNN predicts (the paper's task: variant = parent + u).
- ``sbs_atom_object``   (n_atoms, dim) : per-atom SBS objects b_i of supercells
  (translation breaking), in the same irreps basis; read by the biased wrapper
  built with ``SBSBiasedModel(per_atom=True)`` (E_sb = −λ Σ_i ⟨b_i, D_i(x)⟩), attached by
  ``AttachSBS(source="arrays")`` from ``atoms.arrays`` and fed by
  ``SBSNequIPCalculator(sbs_atom_object=...)``. The SBS-conditioned GNN uses the graph
  object only.

Registering them makes NequIP's batching concatenate them per frame (per atom),
``frame_from_batched`` split them back, ``from_ase`` add the frame dimension when they are
read from extxyz (``include_keys``), and ``nequip-compile`` give them a dynamic
frame (atom) dimension.
"""

from nequip.data import register_fields

SBS_OBJECT_KEY = "sbs_object"
SBS_STRENGTH_KEY = "sbs_strength"
SBS_DISPLACEMENTS_KEY = "sbs_displacements"
SBS_ATOM_OBJECT_KEY = "sbs_atom_object"

register_fields(
    graph_fields=[SBS_OBJECT_KEY, SBS_STRENGTH_KEY],
    node_fields=[SBS_DISPLACEMENTS_KEY, SBS_ATOM_OBJECT_KEY],
)
