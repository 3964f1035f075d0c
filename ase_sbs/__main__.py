"""``python -m ase_sbs``: the ``ase-sbs`` command line."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
