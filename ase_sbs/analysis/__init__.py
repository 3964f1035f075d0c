"""Analysis of structures against a parent: matching, symmetry-mode decomposition,
approximate symmetry levels, and equivariance diagnostics of potentials."""
