"""Errors a user can act on.

Anything raised as :class:`UserError` is bad input or usage: the CLI prints its message on one line and exits 2,
without a traceback. Everything else is a bug and exits 1.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or usage that the user can fix (exit code 2)."""


class DataError(UserError):
    """A dataset that cannot be used as given."""


class ImageDecodeError(Exception):
    """One image file that cannot be used; the run goes on without it and the data report names it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ParameterError(UserError, ValueError):
    """A parameter an estimator does not take. A :class:`UserError`, so the CLI prints it on one line and exits 2;
    and a ``ValueError``, because that is what scikit-learn's ``set_params`` contract promises (``GridSearchCV``
    and scikit-learn's estimator checks rely on it)."""
