"""The solver's version, stated in every verdict entry of the evidence (owned by geo, not the
package: a release that leaves the solver alone keeps it, a solver change without a release
does not go unnoticed)."""

from __future__ import annotations

SOLVER_VERSION = "1"
"""Bump with every change that can change a verdict or an assessment for the same inputs
(`geo.decision.decide` and everything it calls); the audit notes an entry decided by another
version (it recomputes with this one either way)."""

_PACKAGE_VERSION_SOLVERS = {"0.1.0": "1"}
"""Entries written before geo owned the version state the package version instead
(`lightfence.__version__`, which was 0.1.0 throughout): the solver of version 1."""


def solver_version(stated: object) -> object:
    """The solver version an entry's `solver.version` stands for (the stated value itself when
    it is not a package version written before geo owned the version)."""
    if isinstance(stated, str):
        return _PACKAGE_VERSION_SOLVERS.get(stated, stated)
    return stated
