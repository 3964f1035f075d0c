"""The command line of settings beyond k = 0 (imported by :mod:`ase_sbs.cli` when used):
``ase-sbs scan FILE`` (the instability scan), ``ase-sbs detect FILE --supercell ...|--kpoint
...`` (a supercell setting's channels; ``--supercell auto --calc NAME``: the one the scan
picks, and why) and what ``explore --supercell auto`` prints about its choice."""

from __future__ import annotations

import os
import sys

from .errors import SBSInputError


def add_scan_parser(sub) -> None:
    """The ``scan`` subcommand's options."""
    p = sub.add_parser("scan", help="which wave vectors are unstable: every channel's curvature at each k-star of "
                       "an NxNxN grid and along the high-symmetry path, like a phonon dispersion")
    p.add_argument("file", help="structure file in any format ase.io reads (CIF, POSCAR, extxyz, xyz, ...)")
    p.add_argument("--index", default="-1", help="frame to read from a multi-frame file (ase.io index, default -1)")
    p.add_argument("--calc", default="auto", help="potential (as for explore)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--grid", type=int, default=4, metavar="N",
                   help="the wave vectors of an NxNxN supercell of the primitive parent (default 4)")
    p.add_argument("--path-divisions", type=int, metavar="M",
                   help="steps per line of the high-symmetry path (default N; 0: no path)")
    p.add_argument("--no-relax", action="store_true",
                   help="scan the structure as given (default: relax it within its own group first, as explore does)")
    p.add_argument("--step", type=float, default=0.01, help="finite-difference step, Å (default 0.01)")
    p.add_argument("--symprec", type=float, default=1e-3, help="distance tolerance in Å (default 1e-3)")
    p.add_argument("--all", action="store_true", help="list every star and channel, not only the unstable ones")
    p.add_argument("--plot", help="PNG of the lowest curvature along the path (default <file stem>_scan.png)")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON to OUT ('-' for stdout only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def scan_command(args, atoms) -> int:
    """``ase-sbs scan``: the table of unstable stars, the supercell they need, the picture."""
    from .analysis.scan import scan
    from .core.files import write_json
    from .explore.protocol import auto_supercell
    from .report.scan import describe_choice, describe_scan, plot_scan

    if args.grid < 1:
        raise SBSInputError(f"--grid takes a positive integer N (an NxNxN supercell), got {args.grid}")
    divisions = args.path_divisions
    if divisions is not None and divisions < 0:
        raise SBSInputError(f"--path-divisions takes a non-negative integer, got {divisions}")
    if not args.step > 0:
        raise SBSInputError(f"--step takes a positive displacement in Å, got {args.step:g}")
    result = scan(atoms, args.calc, args.grid, divisions or None, relax=not args.no_relax, device=args.device,
                  symprec=args.symprec, step=args.step, path=divisions != 0,
                  progress=not args.no_progress and sys.stderr.isatty())
    quiet = args.json == "-"
    data = result.as_dict()
    try:
        choice = auto_supercell(atoms, result, args.symprec)
        data["supercell_auto"] = choice.as_dict()
        why = describe_choice(choice)
    except SBSInputError as exc:  # too large: the scan stands, the choice is refused
        data["supercell_auto"] = {"refused": str(exc)}
        why = f"supercell     auto refused: {exc}"
    plot = None
    if result.path:
        plot = args.plot or os.path.splitext(os.path.basename(args.file))[0] + "_scan.png"
        plot_scan(result, plot)
    if not quiet:
        print(describe_scan(result, every_star=args.all))
        print()
        print(why)
        if plot:
            print(f"\nwritten: {plot}")
    if args.json:
        write_json(data, args.json)
    return 0


def detect_setting(args, atoms, supercell) -> int:
    """``detect --supercell/--kpoint``: the supercell setting, its channels and their
    isotropy subgroups (``supercell``: as parsed from --supercell; ``auto``: :func:`detect_auto`)."""
    from .core.files import write_json
    from .explore.protocol import setting_of
    from .report.structures import describe_setting_channels
    from .setting.channels import channel_matches_kpoint, distortion_channels
    from .setting.isotropy import isotropy_subgroups
    from .setting.kpoints import parse_kpoint

    if args.max_fixed_dim < 1:
        raise SBSInputError("--max-fixed-dim takes a positive number of free parameters")
    if supercell == "auto":
        return detect_auto(args, atoms)
    k = None if args.kpoint is None else parse_kpoint(args.kpoint, atoms, args.symprec)  # by the parent's lattice
    setting = setting_of(atoms, supercell, k, args.symprec)
    channels = distortion_channels(setting)
    if k is not None:
        channels = [c for c in channels if channel_matches_kpoint(c, k, setting)]
    isotropy = {c.label: isotropy_subgroups(setting, c, max_fixed_dim=args.max_fixed_dim) for c in channels}
    if args.json != "-":
        print(describe_setting_channels(setting, channels, isotropy))
    if args.json:
        write_json({"parent": setting.parent.name(), "supercell": setting.supercell.tolist(),
                    "group_order": setting.order,
                    "channels": [{**c.as_dict(), "isotropy_subgroups": [t.as_dict() for t in isotropy[c.label]]}
                                 for c in channels]}, args.json)
    return 0


def detect_auto(args, atoms) -> int:
    """``detect --supercell auto --calc NAME``: the scan of the structure as given (grid 4
    and the special points; nothing is relaxed), the supercell it picks and why, and that
    setting's channels with their isotropy subgroups."""
    from .analysis.scan import scan
    from .core.files import write_json
    from .explore.protocol import AUTO_GRID, auto_supercell, setting_of
    from .report.scan import describe_choice, describe_scan
    from .report.structures import describe_setting_channels
    from .setting.channels import distortion_channels
    from .setting.isotropy import isotropy_subgroups

    if not args.calc:
        raise SBSInputError("--supercell auto needs a potential for the instability scan: add --calc NAME "
                            "(7net-0, emt, ...)")
    result = scan(atoms, args.calc, AUTO_GRID, relax=False, symprec=args.symprec, path=False,
                  progress=sys.stderr.isatty())
    choice = auto_supercell(atoms, result, args.symprec)
    setting = setting_of(atoms, "auto", None, args.symprec, scan=result)
    channels = distortion_channels(setting)
    isotropy = {c.label: isotropy_subgroups(setting, c, max_fixed_dim=args.max_fixed_dim) for c in channels}
    if args.json != "-":
        print(describe_scan(result))
        print("\n" + describe_choice(choice))
        print("note          scanned as given: explore relaxes the parent within its group first ('ase-sbs scan' "
              "does too)\n")
        print(describe_setting_channels(setting, channels, isotropy))
    if args.json:
        write_json({"scan": result.as_dict(), "choice": choice.as_dict(), "parent": setting.parent.name(),
                    "supercell": setting.supercell.tolist(), "group_order": setting.order,
                    "channels": [{**c.as_dict(), "isotropy_subgroups": [t.as_dict() for t in isotropy[c.label]]}
                                 for c in channels]}, args.json)
    return 0


def explore_choice(ex, atoms, out: str, symprec: float) -> str:
    """What ``explore --supercell auto`` chose and why (from the scan it stored in ``out``)."""
    from .core.files import write_json
    from .explore.protocol import auto_supercell, saved_scan
    from .report.scan import describe_choice

    result = saved_scan(ex.parent.key, out, ex.settings.curvature_step)
    if result is None:
        return f"supercell     {ex.supercell} (auto)"
    choice = auto_supercell(atoms, result, symprec)
    write_json({**result.as_dict(), "supercell_auto": choice.as_dict()}, os.path.join(out, "scan.json"))
    return describe_choice(choice) + f"\n              (the scan: {os.path.join(out, 'scan.json')})"
