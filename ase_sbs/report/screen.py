"""A screen for people: one line per parent (and potential) as it is written, one per
committee, and the closing summary."""

from __future__ import annotations

from .committee import describe_committee_outcome


def describe_outcome(outcome) -> str:
    """``Cu_bcc  Cu  [emt]  Im-3m (229) -> Fm-3m (225)  ΔE -32.68 meV/f.u.  2 phase(s)  [row 1]``,
    or the parent's error, for a :class:`~ase_sbs.screen.database.ParentOutcome`; a
    committee's line (:func:`~ase_sbs.report.committee.describe_committee_outcome`) for
    a :class:`~ase_sbs.screen.committee.CommitteeOutcome`."""
    if hasattr(outcome, "potentials"):
        return describe_committee_outcome(outcome)
    head = f"{outcome.name}  {outcome.formula}" + (f"  [{outcome.potential}]" if outcome.potential else "")
    if outcome.error is not None:
        return f"{head}  error: {outcome.error}  [row {outcome.id}]"
    tail = f"{outcome.n_phases} phase(s)  [row {outcome.id}]"
    if outcome.ground_group is not None:
        checked = "" if outcome.ground_status in (None, "ground state", "parent") else f" ({outcome.ground_status})"
        if outcome.ground_group == outcome.parent_group and outcome.verdict == "inconclusive":
            checked += " (the parent's own verdict: inconclusive, its reasons in the row's data)"
        return (f"{head}  {outcome.parent_group} -> {outcome.ground_group}{checked}  ΔE "
                f"{1000 * outcome.ground_dE:+.2f} meV/f.u.  {tail}")
    if outcome.ground_status == "below lowest" and outcome.lowest_dE is not None:
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
    if summary.committees or summary.committees_skipped:
        disagree = sum(not c.agree for c in summary.committees)
        lines.append(f"committees: {len(summary.committees)} computed ({disagree} where the potentials disagree), "
                     f"{summary.committees_skipped} skipped; ase db {summary.db} kind=committee -c "
                     "name,potentials,agree,spread")
    if summary.plot:
        lines.append(f"committee plot: {summary.plot}")
    if summary.unreadable:
        lines.append(f"not read ({len(summary.unreadable)} file(s) ase.io cannot read as a structure):")
        lines += [f"  {u}" for u in summary.unreadable]
    return "\n".join(lines)
