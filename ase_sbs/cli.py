"""Command line: ``ase-sbs detect FILE``, ``ase-sbs sbs FILE [--target T]``,
``ase-sbs explore FILE [--calc NAME] [--engine E] ...``, ``ase-sbs screen INPUTS... [--db DB] [--workers N]``,
``ase-sbs bench FILE ...``, ``ase-sbs check-potential FILE``, ``ase-sbs potentials``,
``ase-sbs modes CHILD --parent PARENT`` and ``ase-sbs symmetry-levels FILE [--parent PARENT]``.

Tables go to stdout; ``--json OUT`` writes the same content as JSON (``-`` for stdout,
in which case the table is not printed). Bad input exits with status 2 and one line
on stderr; a result the storage refuses to take (a full disk, a quota, a read-only
directory) with status 74 and one line naming the directory and what is kept (the same
command resumes); a screen with parents that failed with status 1; an exploration whose
evidence is inconclusive (relaxations out of steps, an unstable channel that led
nowhere) with status 3 and the reasons on stderr; Ctrl-C with 130.
"""

from __future__ import annotations

import argparse
import errno
import sys

from .errors import SBSInputError, SBSStorageError

STORAGE_FAILED = 74  # exit status when a result could not be written (sysexits' EX_IOERR)
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)  # the storage refused a write


def _read(path: str, index: str):
    """The structure in ``path``, refused with one line when it cannot be read or is
    disordered (a site shared by several species)."""
    from .core.structure import check_structure, cif_site_labels, read_atoms

    atoms = read_atoms(path, index)
    try:
        check_structure(atoms)
    except SBSInputError as exc:
        if "disordered" in str(exc) and path.lower().endswith(".cif"):  # name the site by its CIF labels
            labelled = atoms.copy()
            labelled.info["site_labels"] = cif_site_labels(path)
            try:
                check_structure(labelled)
            except SBSInputError as named:
                exc = named
        raise SBSInputError(f"{path}: {exc}") from exc
    return atoms


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="structure file in any format ase.io reads (CIF, POSCAR, extxyz, xyz, ...)")
    p.add_argument("--index", default="-1", help="frame to read from a multi-frame file (ase.io index, default -1)")


def _add_common(p: argparse.ArgumentParser) -> None:
    _add_input(p)
    p.add_argument("--symprec", type=float, default=1e-3, help="distance tolerance in Å (default 1e-3)")
    p.add_argument("--angle-tolerance", type=float, default=-1.0,
                   help="angle tolerance in degrees (default -1: spglib's own)")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON to OUT ('-' for stdout only)")


def _add_explore_options(p: argparse.ArgumentParser) -> None:
    """The options of one exploration, shared by explore and screen (read by :func:`_explore_kwargs`)."""
    p.add_argument("--calc", default="auto",
                   help="potential: auto (EMT for the metals it covers, else 7net-0), a registered name (emt, 7net-0, "
                   "7net-l3i5, 7net-mf-0:PBE or :R2SCAN, chgnet, chgnet-r2scan, a plugin's; 'ase-sbs potentials' lists "
                   "them), a NequIP model file (.nequip.zip, .pt2, .ckpt); several, comma-separated: a committee")
    p.add_argument("--targets", default="auto",
                   help="comma-separated targets (P4mm,R3m,...) or 'auto': "
                   "the maximal isotropy subgroup of each channel")
    p.add_argument("--mode", choices=["seed", "field"], default="seed",
                   help="seed: small bias annealed away; field: ramp the bias up first (first-order transitions)")
    p.add_argument("--cell", choices=["full", "fixed", "volume"], default="full", help="cell relaxation (crystals)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--engine", choices=["auto", "ase", "batched"], default="auto",
                   help="ase: one relaxation at a time; batched: all together in torch (ase_sbs.relax.engine); "
                   "auto (default): batched, unless the potential cannot evaluate batches (EMT, other ASE "
                   "calculators): then ase")
    p.add_argument("--optimizer", choices=["auto", "bfgs", "fire"], default="auto",
                   help="optimizer of the batched engine: bfgs (as the ASE path), fire (ASE's FIRE); "
                   "auto (default): fire on CUDA, bfgs on the CPU")
    p.add_argument("--batch-atoms", type=int, metavar="N",
                   help="atoms per batch of the batched engine (default: from free memory on CUDA, 64 on the CPU)")
    p.add_argument("--all-variants", action="store_true", help="relax every SBS member, not one per target")
    p.add_argument("--seed-force", type=float, default=0.05,
                   help="largest bias force at the parent, eV/Å (default 0.05)")
    p.add_argument("--fmax", type=float, default=5e-4, help="final force criterion, eV/Å (default 5e-4)")
    p.add_argument("--max-steps", type=int, default=400, help="optimizer step budget per stage (default 400)")
    p.add_argument("--symprec", type=float, default=1e-3, help="distance tolerance in Å (default 1e-3)")
    p.add_argument("--supercell", nargs="+", metavar="N",
                   help="beyond k = 0: run on this supercell of the given cell: three integers (2 2 2) or the nine "
                   "of a matrix, rows first (1 1 0 -1 1 0 0 0 2); a conventional cell is reduced to its primitive "
                   "parent first; auto: the smallest one holding the unstable stars of 'ase-sbs scan'")
    p.add_argument("--kpoint", help="beyond k = 0: only channels at this k-star: a special point of the parent's "
                   "Bravais lattice (Γ/G, X, M, R for primitive cubic; H, N, P body-centred; X, L, W, K face-centred; "
                   "ASE's names for the others) or fractions 'kx ky kz' of its primitive reciprocal basis (picks the "
                   "supercell when --supercell is not given)")
    p.add_argument("--cascade", action="store_true",
                   help="from the phases found, explore their own unstable channels in the same setting, lowest "
                   "phase first, down to --max-depth levels (explore prints the tree and writes phase_tree.png); the "
                   "ground state is the lowest phase when it is a local minimum")
    p.add_argument("--max-depth", type=int, default=3, metavar="N", help="levels of the cascade (default 3)")
    p.add_argument("--max-relaxations", type=int, metavar="N",
                   help="cascade budget: stop expanding phases after this many relaxations (default: no limit)")
    p.add_argument("--max-minutes", type=float, metavar="T",
                   help="cascade budget: expand no further phase after T minutes (default: no limit)")
    p.add_argument("--expand", choices=["below", "all"], default="below",
                   help="cascade: below (default) expands unstable phases that lie below the lowest local minimum "
                   "found, lowest first; all expands every unstable phase")
    p.add_argument("--check", choices=["needed", "all"], default="needed",
                   help="cascade: needed (default) checks the curvatures of the phases up to the lowest local "
                   "minimum; all checks every phase")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ase-sbs",
        description="Symmetry breaking sets for atomistic structures (Xie & Smidt, TMLR 2024).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("detect", help="symmetry, distortion channels and candidate targets of a structure")
    _add_common(p)
    p.add_argument("--supercell", nargs="+", metavar="N",
                   help="the channels of this supercell of the given cell (three integers or nine) and each "
                   "channel's isotropy subgroups; auto (with --calc): the one the instability scan picks, and why")
    p.add_argument("--calc", help="with --supercell auto: the potential of the scan (as for explore)")
    p.add_argument("--kpoint", help="with --supercell (or alone: the smallest supercell holding it): only channels "
                   "at this k-star (a special point of the parent's Bravais lattice, e.g. X, M, R for primitive "
                   "cubic, H, N, P body-centred, X, L, W, K face-centred, or fractions 'kx ky kz')")
    p.add_argument("--max-fixed-dim", type=int, default=1, metavar="D",
                   help="list isotropy subgroups whose order parameter has at most D free parameters (default 1)")
    p = sub.add_parser("sbs", help="the symmetry breaking set for a target (or for every candidate target)")
    _add_common(p)
    p.add_argument("--target", "-t", help="target subgroup: point group (C4v, 4mm), space group (P4mm, 99); "
                   "default: every candidate target")
    p.add_argument("--max-l", type=int, default=4, help="largest O(3) degree l searched (default 4)")
    p = sub.add_parser("explore", help="relax along every symmetry-breaking channel and report the phases found")
    _add_input(p)
    _add_explore_options(p)
    p.add_argument("--out", help="output directory (default: <file stem>_sbs); finished relaxations there are reused")
    p.add_argument("--json", metavar="FILE", help="also write the results JSON to FILE ('-' for stdout only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("screen", help="explore many parents (on Dask workers) into an ASE database (SQLite or "
                       "PostgreSQL); parents already there with the same settings are skipped")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="structure files, directories (every file ase.io reads in them) or ASE databases "
                   "(.db, postgresql://...; --select picks rows)")
    p.add_argument("--index", default="-1", help="frames of a multi-frame file (ase.io index, default -1; ':' all)")
    p.add_argument("--select", help="rows of the input databases, in 'ase db' syntax (e.g. 'natoms<10,Ti')")
    p.add_argument("--db", default="results.db", help="results database: an SQLite file (default results.db) or a "
                   "postgresql://user@host:port/name URL (pip install 'ase-sbs[db]')")
    p.add_argument("--workers", type=int, metavar="N",
                   help="explore on a local Dask cluster of N worker processes (pip install 'ase-sbs[dask]'); "
                   "default: one parent after the other in this process")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="explore on the Dask scheduler at ADDR (tcp://host:8786, e.g. a dask-jobqueue cluster)")
    p.add_argument("--retries", type=int, default=2, help="times a failing Dask task is resubmitted (default 2)")
    _add_explore_options(p)
    p.add_argument("--no-progress", action="store_true", help="no line per parent, only the closing summary")
    p = sub.add_parser("bench", help="wall time of explore: ASE path vs batched engine vs the model-only floor")
    _add_input(p)
    p.add_argument("--calc", default="auto", help="potential (as for explore)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--targets", default="auto", help="targets (as for explore)")
    p.add_argument("--supercell", type=int, nargs=3, metavar="N",
                   help="run the k = 0 targets in this supercell of the parent (whole-supercell relaxations)")
    p.add_argument("--all-variants", action="store_true", help="relax every SBS member")
    p.add_argument("--optimizer", choices=["auto", "bfgs", "fire"], default="auto",
                   help="optimizer of the batched engine (default auto: fire on CUDA, bfgs on the CPU)")
    p.add_argument("--batch-atoms", type=int, metavar="N",
                   help="atoms per batch of the batched engine (default: from free memory on CUDA, 64 on the CPU)")
    p.add_argument("--paths", default="ase,batched",
                   help="which explores to time (default ase,batched; none: only --sweep / --many)")
    p.add_argument("--sweep", help="comma-separated batch sizes for a throughput sweep (e.g. 1,2,4,8,16)")
    p.add_argument("--plot", help="PNG file for the throughput sweep")
    p.add_argument("--many", type=int, default=0, help="also relax this many copies of the parent in one call")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON ('-' for stdout only)")
    p = sub.add_parser("check-potential", help="equivariance errors of a potential, symmetry type by type")
    _add_input(p)
    p.add_argument("--calc", default="auto", help="potential (as for explore)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--trials", type=int, default=4, help="random transformations per symmetry type")
    p.add_argument("--tolerance", type=float, default=1e-6, help="flag errors above this (eV, eV/Å)")
    p.add_argument("--symprec", type=float, default=1e-3, help="tolerance for the structure's own group (Å)")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON ('-' for stdout only)")
    p = sub.add_parser("modes", help="decompose a distorted structure into its parent's symmetry-adapted channels")
    _add_input(p)
    p.add_argument("--parent", required=True, help="the high-symmetry parent structure file")
    p.add_argument("--symprec", type=float, default=1e-3, help="tolerance for the parent's and child's symmetry (Å)")
    p.add_argument("--threshold", type=float, default=1e-6, help="amplitudes above this count as present (Å)")
    p.add_argument("--max-strain", type=float, default=0.3, metavar="S",
                   help="largest stretch of the child's cell against the parent's lattice, |U - 1| (default 0.3)")
    p.add_argument("--all", action="store_true", help="list every channel, also those below the threshold")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON ('-' for stdout only)")
    from .cli_scan import add_scan_parser

    add_scan_parser(sub)
    p = sub.add_parser("potentials", help="the potentials --calc takes: installed here, elements, batching, source")
    p.add_argument("--json", metavar="OUT", help="also write the table as JSON ('-' for stdout only)")
    p = sub.add_parser("symmetry-levels", help="distance (Å) from a structure to its own group and each supergroup")
    _add_input(p)
    p.add_argument("--parent", help="high-symmetry parent structure file (the top group and the reference)")
    p.add_argument("--symprec", type=float, default=1e-3, help="tolerance of the structure's own group (Å)")
    p.add_argument("--max-symprec", type=float, default=0.5,
                   help="largest tolerance tried for the top group without --parent (Å, default 0.5)")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON ('-' for stdout only)")
    return parser


def _modes(args) -> int:
    from .analysis.modes import decompose
    from .core.files import write_json
    from .report.analysis import describe_modes

    if not 0 < args.max_strain < 1:
        raise SBSInputError(f"--max-strain takes a stretch between 0 and 1 (0.3: 30 %), got {args.max_strain:g}")
    child = _read(args.file, args.index)
    parent = _read(args.parent, "-1")
    dec = decompose(child, parent, symprec=args.symprec, threshold=args.threshold, max_strain=args.max_strain)
    if args.json != "-":
        print(describe_modes(dec, all_channels=args.all))
    if args.json:
        write_json(dec.as_dict(), args.json)
    return 0


def _symmetry_levels(args) -> int:
    from .analysis.approx import symmetry_levels
    from .core.files import write_json
    from .report.analysis import describe_levels

    atoms = _read(args.file, args.index)
    parent = _read(args.parent, "-1") if args.parent else None
    res = symmetry_levels(atoms, parent, symprec=args.symprec, max_symprec=args.max_symprec)
    if args.json != "-":
        print(describe_levels(res))
    if args.json:
        write_json(res.as_dict(), args.json)
    return 0


def _potentials(args) -> int:
    from .core.files import write_json
    from .potentials.catalog import describe_potentials, potential_rows

    rows = potential_rows()
    if args.json != "-":
        print(describe_potentials(rows))
    if args.json:
        write_json({"potentials": rows}, args.json)
    return 0


def _check_potential(args) -> int:
    from .analysis.diagnostics import equivariance_error
    from .core.files import write_json
    from .core.structure import formula
    from .potentials.registry import get_potential
    from .report.analysis import describe_report

    atoms = _read(args.file, args.index)
    pot = get_potential(args.calc, atoms.get_chemical_symbols(), args.device)
    report = equivariance_error(pot.calc, atoms, trials=args.trials, tolerance=args.tolerance,
                                symprec=args.symprec)
    if args.json != "-":
        print(f"potential     {pot.name} on {formula(atoms)}")
        print(describe_report(report))
    if args.json:
        write_json({"potential": pot.name, **report.as_dict()}, args.json)
    return 0


def _explore(args) -> int:
    import os

    from .core.files import write_json
    from .explore.protocol import break_symmetry
    from .report.exploration import describe_exploration, write_exploration
    from .setting.kpoints import parse_kpoint

    atoms = _read(args.file, args.index)
    options = _explore_kwargs(args)
    if args.kpoint is not None:  # a name means a point of this parent's lattice: pass its fractions
        options["kpoint"] = parse_kpoint(args.kpoint, atoms, args.symprec).tolist()
    if "," in args.calc:  # several potentials: a committee (ase_sbs.screen.committee)
        from .screen.committee import explore_command
        return explore_command(args, atoms, options)
    out = args.out = args.out or os.path.splitext(os.path.basename(args.file))[0] + "_sbs"
    ex = break_symmetry(atoms, calc=args.calc, out=out, progress=not args.no_progress and sys.stderr.isatty(),
                        device=args.device, **options)
    data = write_exploration(ex, out)
    if args.json != "-":
        print(describe_exploration(ex))
        if options["supercell"] == "auto":
            from .cli_scan import explore_choice
            print("\n" + explore_choice(ex, atoms, out, args.symprec))
        tree = f", {os.path.join(out, 'phase_tree.png')}, {os.path.join(out, 'tree')}/" if ex.tree is not None else ""
        print(f"\nwritten: {os.path.join(out, 'explore.json')}, {os.path.join(out, 'energies.png')}, "
              f"{os.path.join(out, 'phases')}/{tree}")
    if args.json:
        write_json(data, args.json)
    if ex.verdict == "inconclusive":
        print(f"{args.file}: inconclusive: " + "; ".join(ex.verdict_reasons), file=sys.stderr)
        return 3
    return 0


def _explore_kwargs(args) -> dict:
    """break_symmetry's keyword arguments from the options of :func:`_add_explore_options`
    (without calc and device)."""
    return dict(targets=args.targets, mode=args.mode, cell=args.cell, supercell=_supercell(args.supercell),
                kpoint=args.kpoint, seed_force=args.seed_force, release_fmax=args.fmax, max_steps=args.max_steps,
                symprec=args.symprec, all_variants=args.all_variants, engine=args.engine,
                engine_options=_engine_options(args), cascade=args.cascade, max_depth=args.max_depth,
                budget=_budget(args))


def _budget(args) -> dict | None:
    """The cascade budget of the options (None: the defaults)."""
    budget = {"max_relaxations": args.max_relaxations,
              "max_seconds": None if args.max_minutes is None else 60.0 * args.max_minutes,
              "expand": args.expand, "check": args.check}
    defaults = {"max_relaxations": None, "max_seconds": None, "expand": "below", "check": "needed"}
    return None if budget == defaults else budget


def _screen(args) -> int:
    from .report.screen import describe_outcome, describe_summary
    from .screen import screen
    from .setting.kpoints import parse_kpoint

    if args.kpoint is not None and not args.kpoint.strip():
        parse_kpoint(args.kpoint)  # refuses an empty k-point in one line, before any parent runs
    args.resume = f"finished parents are in {args.db} and the same command skips them"
    summary = screen(args.inputs, calc=args.calc, db=args.db, workers=args.workers, scheduler=args.scheduler,
                     progress=False if args.no_progress else (lambda o: print(describe_outcome(o), flush=True)),
                     select=args.select, index=args.index, device=args.device, retries=args.retries,
                     **_explore_kwargs(args))
    print(describe_summary(summary))
    return 1 if summary.failures else 0  # a parent with an error row: the screen is not complete


def _supercell(values):
    """--supercell: None, auto, three positive integers, or a 3x3 matrix (nine integers, rows first)."""
    if not values:
        return None
    if values == ["auto"]:
        return "auto"
    try:
        values = [int(v) for v in values]
    except ValueError:
        raise SBSInputError(f"--supercell takes auto, three integers or nine, got {' '.join(values)}") from None
    if len(values) == 3:
        if min(values) < 1:
            raise SBSInputError("--supercell takes three positive integers or the nine integers of a matrix")
        return tuple(values)
    if len(values) == 9:
        return [values[0:3], values[3:6], values[6:9]]
    raise SBSInputError(f"--supercell takes three integers or nine (a 3x3 matrix, rows first), got {len(values)}")


def _engine_options(args) -> dict:
    from .relax.engine import BatchLimits

    options = {"optimizer": args.optimizer}
    if args.batch_atoms is not None:
        if args.batch_atoms < 1:
            raise SBSInputError(f"--batch-atoms takes a positive number of atoms, got {args.batch_atoms}")
        options["limits"] = BatchLimits(max_atoms=args.batch_atoms)
    return options


def _bench(args) -> int:
    from .bench import bench_explore
    from .core.files import write_json
    from .report.bench import describe

    atoms = _read(args.file, args.index)
    if args.supercell and min(args.supercell) < 1:
        raise SBSInputError("--supercell takes three positive integers")
    paths = tuple(p.strip() for p in args.paths.split(",") if p.strip() and p.strip() != "none")
    if set(paths) - {"ase", "batched"} or not (paths or args.sweep or args.many):
        raise SBSInputError("--paths takes ase, batched or both (comma-separated), or none with --sweep or --many")
    try:
        sweep = [int(x) for x in args.sweep.split(",")] if args.sweep else None
    except ValueError as exc:
        raise SBSInputError(f"--sweep takes comma-separated integers, got {args.sweep!r}") from exc
    quiet = args.json == "-"
    options = _engine_options(args)
    out = bench_explore(atoms, args.calc, args.device, args.targets, args.all_variants, args.optimizer,
                        limits=options.get("limits"), sweep=sweep, many=args.many, paths=paths, plot=args.plot,
                        progress=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)),
                        supercell=tuple(args.supercell) if args.supercell else None)
    if not quiet:
        print(describe(out))
    if args.json:
        write_json(out, args.json)
    return 0


def _detect(args) -> int:
    from .core.files import write_json
    from .core.symmetry import detect_symmetry
    from .report.structures import channel_dict, describe_symmetry, symmetry_dict
    from .sbs.sets import target_dict
    from .setting.channels import distortion_channels
    from .setting.isotropy import candidate_targets
    from .setting.setting import k0_setting

    atoms = _read(args.file, args.index)
    if args.supercell or args.kpoint is not None:  # a setting beyond k = 0 (ase_sbs.cli_scan)
        from .cli_scan import detect_setting
        return detect_setting(args, atoms, _supercell(args.supercell))
    sym = detect_symmetry(atoms, symprec=args.symprec, angle_tolerance=args.angle_tolerance)
    channels = distortion_channels(sym)
    targets = candidate_targets(sym, channels=channels)
    if args.json != "-":
        print(describe_symmetry(sym, channels, targets))
    if args.json:
        data = symmetry_dict(sym)
        data["channels"] = [channel_dict(c) for c in channels]
        data["candidate_targets"] = [target_dict(t, k0_setting(sym)) for t in targets]
        write_json(data, args.json)
    return 0


def _scan(args) -> int:
    from .cli_scan import scan_command

    return scan_command(args, _read(args.file, args.index))


def _sbs(args) -> int:
    from .core.files import write_json
    from .core.symmetry import detect_symmetry
    from .report.structures import describe_sbs, describe_targets, parent_dict
    from .sbs.sets import symmetry_breaking_set
    from .setting.channels import distortion_channels
    from .setting.isotropy import candidate_targets

    sym = detect_symmetry(_read(args.file, args.index), symprec=args.symprec, angle_tolerance=args.angle_tolerance)
    quiet = args.json == "-"
    if args.target is not None:
        B = symmetry_breaking_set(sym, args.target, max_l=args.max_l)
        if not quiet:
            print(f"parent        {sym.name()}")
            print(describe_sbs(B))
        if args.json:
            write_json({"parent": parent_dict(sym), **B.as_dict()}, args.json)
        return 0
    channels = distortion_channels(sym)
    targets = candidate_targets(sym, channels=channels)
    sets, sizes = [], {}
    for t in targets:
        try:
            B = symmetry_breaking_set(sym, t, max_l=args.max_l, channels=channels)
        except SBSInputError as exc:
            print(f"ase-sbs: warning: {t.name}: {exc}", file=sys.stderr)
            continue
        sets.append(B)
        sizes[id(t)] = (B.irreps, len(B))
    if not quiet:
        print(f"parent        {sym.name()}\n")
        print(describe_targets(sym, targets, sizes))
    if args.json:
        write_json({"parent": parent_dict(sym), "sets": [B.as_dict() for B in sets]}, args.json)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        commands = {"detect": _detect, "sbs": _sbs, "explore": _explore, "screen": _screen,
                    "check-potential": _check_potential, "modes": _modes, "symmetry-levels": _symmetry_levels,
                    "bench": _bench, "potentials": _potentials, "scan": _scan}
        return commands[args.command](args)
    except SBSInputError as exc:
        print(f"ase-sbs: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        return 0
    except SBSStorageError as exc:
        print(f"ase-sbs: error: {exc}{_saved(args)}", file=sys.stderr)
        return STORAGE_FAILED
    except OSError as exc:  # a write outside ase_sbs.core.files (a library's own) that the storage refused
        if exc.errno not in STORAGE_ERRNOS:
            raise
        print(f"ase-sbs: error: {SBSStorageError.from_oserror(exc.filename or '?', exc)}{_saved(args)}",
              file=sys.stderr)
        return STORAGE_FAILED
    except KeyboardInterrupt:
        print(f"ase-sbs: interrupted{_saved(args)}", file=sys.stderr)
        return 130


def _saved(args) -> str:
    """What a stopped command has kept and how to resume, for its last line."""
    out, resume = getattr(args, "out", None), getattr(args, "resume", None)
    if resume:
        return f"; {resume}"
    return f"; finished relaxations are saved in {out}/ and the same command resumes" if out else ""


if __name__ == "__main__":
    sys.exit(main())
