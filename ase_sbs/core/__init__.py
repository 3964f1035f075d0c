"""The bottom layer: finite groups, O(3) representations, the symmetry of a structure
(spglib for crystals, an exhaustive point-set search for molecules), the symmetrizer, spglib helpers and the
device resolver. Nothing here knows about settings, potentials or relaxations."""
