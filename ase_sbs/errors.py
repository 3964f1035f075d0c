"""Errors raised on bad input: one class, so callers (and the CLI) can catch them all."""


class SBSInputError(ValueError):
    """The input cannot be handled; the message says what is wrong and what to do."""
