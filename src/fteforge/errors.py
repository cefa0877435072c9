"""Errors a user can act on: each names the file, the field and the fix."""

from __future__ import annotations


class FteforgeError(Exception):
    """Base class for every error fteforge reports to a user (exit code 2)."""


class SpecError(FteforgeError):
    """One or more problems in spec files; `problems` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ParamsError(FteforgeError):
    """A bad value in params.yaml."""


class UnsafeWeightsError(FteforgeError):
    """Weights in a format that can run code when loaded (pickle), or remote code."""
