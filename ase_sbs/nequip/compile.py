"""``nequip-compile`` with the ``ase_sbs`` target registered.

    python -m ase_sbs.nequip.compile MODEL.ckpt OUT.nequip.pt2 --mode aotinductor --device cpu --target ase_sbs

Same arguments as ``nequip-compile``. (With ase_sbs installed as a package, its
``nequip.extension`` entry point registers the target and plain ``nequip-compile`` works.)
"""

from __future__ import annotations

import sys


def main(argv=None):
    from nequip.scripts.compile import main as nequip_compile

    import ase_sbs.nequip  # noqa: F401  (registers fields and the ase_sbs target)

    return nequip_compile(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
