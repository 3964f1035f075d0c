"""A screen for people: one line per parent as it is written, and the closing summary."""

from __future__ import annotations


def describe_outcome(outcome) -> str:
    """``Cu_bcc  Cu  Im-3m (229) -> Fm-3m (225)  ΔE -32.68 meV/f.u.  2 phase(s)  [row 1]``,
    or the parent's error, for a :class:`~ase_sbs.screen.database.ParentOutcome`."""
    head = f"{outcome.name}  {outcome.formula}"
    if outcome.error is not None:
        return f"{head}  error: {outcome.error}  [row {outcome.id}]"
    tail = f"{outcome.n_phases} phase(s)  [row {outcome.id}]"
    if outcome.ground_group is not None:
        checked = "" if outcome.ground_status in (None, "ground state", "parent") else f" ({outcome.ground_status})"
        return (f"{head}  {outcome.parent_group} -> {outcome.ground_group}{checked}  ΔE "
                f"{1000 * outcome.ground_dE:+.2f} meV/f.u.  {tail}")
    if outcome.ground_status == "below lowest":
        return (f"{head}  {outcome.parent_group} -> below {outcome.lowest_group} (ΔE {1000 * outcome.lowest_dE:+.2f} "
                f"meV/f.u., the lowest phase found, unstable: explore deeper)  {tail}")
    return f"{head}  {outcome.parent_group} -> inconclusive (nothing below the parent, not shown stable)  {tail}"


def describe_summary(summary) -> str:
    """The closing lines of a :class:`~ase_sbs.screen.screen.ScreenSummary`: the counts,
    how many of the screen's parents failed (now or in an earlier run, each with an
    error row) and the files not read."""
    lines = [f"screened: {summary.computed} computed ({summary.failed} failed), {summary.skipped} skipped "
             f"(already in the database with the same settings, or given twice); results in {summary.db}"]
    if summary.failures:
        earlier = f" ({summary.failed_before} of them in an earlier run)" if summary.failed_before else ""
        lines.append(f"{summary.failures} of {summary.parents} parents failed{earlier}; see the error column: "
                     f"ase db {summary.db} error -c name,error (delete those rows to try them again)")
    if summary.unreadable:
        lines.append(f"not read ({len(summary.unreadable)} file(s) ase.io cannot read as a structure):")
        lines += [f"  {u}" for u in summary.unreadable]
    return "\n".join(lines)
