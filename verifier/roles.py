"""Roles and what each may do: the one table every route's authorisation reads.

A route names the permission it needs (`verifier.deps.require`); a token's role grants a fixed
set of permissions. `tests/verifier/test_roles.py` requests every route with every role, so a
new route without a permission, or with the wrong one, fails there.
"""

from __future__ import annotations

from typing import Literal

Permission = Literal["identify", "read", "evidence", "operate", "admin", "upload"]

PERMISSIONS_BY_ROLE: dict[str, frozenset[Permission]] = {
    # Reads the fleet: chips, verdicts, landmarks, alerts, zones, the delivery log.
    "viewer": frozenset({"identify", "read"}),
    # Reads the fleet and exports evidence bundles; changes nothing.
    "auditor": frozenset({"identify", "read", "evidence"}),
    # Reads the fleet and handles alerts: acknowledge, resolve, mute.
    "operator": frozenset({"identify", "read", "operate"}),
    # Registries, tokens, policies, channels and routing, plus everything the others may do.
    "admin": frozenset({"identify", "read", "evidence", "operate", "admin", "upload"}),
    # One landmark's own task poll and uploads (the route checks the landmark id).
    "landmark": frozenset({"identify", "upload"}),
    # Before roles were split, read-only tokens had this role; it keeps its old reach (every
    # GET, evidence included), which is exactly the auditor's.
    "dashboard": frozenset({"identify", "read", "evidence"}),
}
ROLES = tuple(PERMISSIONS_BY_ROLE)


def allows(role: str, permission: Permission) -> bool:
    return permission in PERMISSIONS_BY_ROLE.get(role, frozenset())
