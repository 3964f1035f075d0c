"""Screening many parents: one exploration per parent, fanned out on Dask distributed
(or run one after the other), the results in an ASE database (SQLite or PostgreSQL),
resumable by each parent's settings hash."""

from .database import ParentOutcome
from .screen import ScreenSummary, screen

__all__ = ["ParentOutcome", "ScreenSummary", "screen"]
