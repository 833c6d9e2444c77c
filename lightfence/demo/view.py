"""What the demo shows: a live table of chips, verdicts and alerts, and the final summary."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from lightfence.demo.budget import proof_budget
from lightfence.demo.runner import Snapshot
from lightfence.demo.scenario import Scenario
from verifier.model import LOCATION_ALERT_TYPES

ALERT_DEADLINE_S = 30.0  # the smuggled chip must be flagged this soon after its first round


STATE_STYLE = {
    "verified": "bold green",
    "inconclusive": "yellow",
    "violation": "bold red",
    "inconsistent": "magenta",
    "dark": "bold white on red",
    "unknown": "dim",
}


def _area(chip: dict[str, Any]) -> str:
    verdict = chip.get("last_verdict") or {}
    assessment = verdict.get("assessment") or {}
    area = assessment.get("sound_area_km2")
    return f"{area:,.0f}" if isinstance(area, int | float) else "-"


def _state(chip: dict[str, Any]) -> str:
    """The chip's state, saying plainly when a software key (one the host owner could copy)
    earned it: the demo's policy accepts such keys, production's does not."""
    if chip.get("key_protection") == "software" and chip["state"] not in ("unknown", "dark"):
        return f"{chip['state']} (software key)"
    return str(chip["state"])


def render(snapshot: Snapshot, scenario: Scenario) -> Group:
    places = {chip.chip_id: chip for chip in scenario.chips}
    chips = Table(title=f"Chips ({snapshot.elapsed_s:4.0f} s)", expand=True)
    for column in ("chip", "owner", "really at", "licensed", "state", "sound km²", "landmarks"):
        chips.add_column(column)
    for chip in snapshot.chips:
        spec = places.get(chip["chip_id"])
        verdict = chip.get("last_verdict") or {}
        chips.add_row(
            chip["chip_id"], chip["owner"],
            spec.place.name if spec else "?",
            ",".join(str(a) for a in chip["licence"].get("allowed", []))[:28],
            Text(_state(chip), style=STATE_STYLE.get(chip["state"], "")),
            _area(chip), str(len(verdict.get("landmarks", []))),
        )
    alerts = Table(title="Alerts", expand=True)
    for column in ("type", "subject", "severity", "status", "message"):
        alerts.add_column(column)
    for alert in snapshot.alerts[:14]:
        alerts.add_row(alert["type"], alert["subject_id"], alert["severity"], alert["status"],
                       alert["message"][:70])
    health: dict[str, int] = {}
    for landmark in snapshot.landmarks:
        health[landmark["health"]] = health.get(landmark["health"], 0) + 1
    footer = Text(
        f"landmarks: {health}   measurements accepted: "
        f"{snapshot.stats.get('measurements_accepted_total', 0)}   rejected: "
        f"{snapshot.stats.get('measurements_rejected_by_reason', {})}\n"
        f"dashboard: {snapshot.dashboard_url}\n" + "\n".join(snapshot.events[-5:])
    )
    return Group(chips, alerts, footer)


def summary(snapshot: Snapshot, scenario: Scenario) -> dict[str, Any]:
    """The machine-readable result, with the checks the scenario is meant to demonstrate."""
    specs = {chip.chip_id: chip for chip in scenario.chips}
    colocated = {lm.landmark_id for lm in scenario.landmarks if lm.colocated}
    states = {chip["chip_id"]: chip["state"] for chip in snapshot.chips}
    open_alerts = {(a["subject_id"], a["type"]) for a in snapshot.alerts}
    location = [a for a in snapshot.alerts if a["type"] in LOCATION_ALERT_TYPES]

    def located_in_time(chip_id: str) -> bool:
        """A location alert (not a mere `inconclusive`) within ALERT_DEADLINE_S of the chip's
        first round: what a compliance team needs to act on a relay."""
        after_s = alerted_after_s(chip_id)
        return after_s is not None and after_s <= ALERT_DEADLINE_S

    def alerted_after_s(chip_id: str) -> float | None:
        """Seconds from the chip's first round to its first location alert."""
        first = snapshot.first_round_unix_ns.get(chip_id)
        opened = [a["opened_unix_ns"] for a in location if a["subject_id"] == chip_id]
        if first is None or not opened:
            return None
        return round(float(min(opened) - first) / 1e9, 1)

    def chips_with(role: str) -> list[str]:
        return [chip.chip_id for chip in scenario.chips if chip.role == role]

    honest = chips_with("honest")
    counts = snapshot.verdict_counts
    budgets = _budgets(scenario)

    def ever(chip_id: str, verdict: str) -> bool:
        return counts.get(chip_id, {}).get(verdict, 0) > 0 or states.get(chip_id) == verdict

    checks = {
        # Over every round of the run, not just the last one.
        "smuggled_never_verified": not any(ever(c, "verified") for c in chips_with("smuggled")),
        "smuggled_alerted": all(located_in_time(c) for c in chips_with("smuggled")),
        "honest_no_location_alert": not any(
            a["subject_id"] in honest for a in location
        ) and not any((c, "outside_licensed_region") in open_alerts for c in honest),
        "dark_chip_alerted": all((c, "went_dark") in open_alerts for c in chips_with("goes_dark")),
        "faulty_landmark_flagged": all(
            (lm.landmark_id, "landmark_fault") in open_alerts
            for lm in scenario.landmarks if lm.claimed is not None
        ),
        "replay_alerted": any(a["type"] == "replay_detected" for a in snapshot.alerts),
        "honest_never_violation": not any(ever(c, "violation") for c in honest),
        "honest_verified": sum(ever(c, "verified") for c in honest),
        "honest_total": len(honest),
    }
    return {
        "duration_s": round(snapshot.elapsed_s, 1),
        "dashboard_url": snapshot.dashboard_url,
        "chips": [
            {
                "chip_id": chip["chip_id"],
                "role": specs[chip["chip_id"]].role if chip["chip_id"] in specs else None,
                "really_at": specs[chip["chip_id"]].place.name if chip["chip_id"] in specs
                else None,
                "licence": chip["licence"],
                "state": chip["state"],
                "key_protection": chip.get("key_protection"),
                "verdicts": snapshot.verdict_counts.get(chip["chip_id"], {}),
                "verified_share": _verified_share(snapshot.verdict_counts.get(chip["chip_id"], {})),
                "location_alert_after_s": alerted_after_s(chip["chip_id"]),
                "proof_budget": budgets.get(chip["chip_id"]),
                "sound_area_km2": (((chip.get("last_verdict") or {}).get("assessment") or {})
                                   .get("sound_area_km2")),
            }
            for chip in snapshot.chips
        ],
        "alerts": [
            {key: alert[key] for key in ("type", "subject_id", "severity", "status", "message")}
            for alert in snapshot.alerts
        ],
        "landmarks": [
            {"landmark_id": lm["landmark_id"], "health": lm["health"],
             "audit": (lm.get("audit") or {}).get("status"),
             "colocated": lm["landmark_id"] in colocated}
            for lm in snapshot.landmarks
        ],
        "machine": _machine(snapshot),
        "notes": notes(scenario),
        "stats": snapshot.stats,
        "events": snapshot.events,
        "checks": checks,
    }


def _budgets(scenario: Scenario) -> dict[str, dict[str, Any] | None]:
    """Per chip, how much RTT its licence leaves a landmark at its declared site (budget.py)."""
    found: dict[str, dict[str, Any] | None] = {}
    for chip in scenario.chips:
        budget = proof_budget(chip.licence)
        found[chip.chip_id] = None if budget is None else budget.to_json()
    return found


def _machine(snapshot: Snapshot) -> dict[str, Any]:
    loads = snapshot.load_1m
    return {
        "cpus": os.cpu_count(),
        "load_average_1m": ({"min": round(min(loads), 2), "max": round(max(loads), 2)}
                            if loads else None),
    }


def _verified_share(counts: dict[str, int]) -> float:
    rounds = sum(counts.values())
    return round(counts.get("verified", 0) / rounds, 3) if rounds else 0.0


def notes(scenario: Scenario) -> list[str]:
    """What the demo models that a reader must know to read its figures."""
    colocated = [lm.landmark_id for lm in scenario.landmarks if lm.colocated]
    lines = [
        "licences are sea-neutral: a chip is verified when its sound region touches the "
        "licensed countries and stays 12 nmi plus the border error clear of every other "
        "country's land",
        "every licence declares its data centre; the smuggled chip declares Cyberjaya",
        "each chip's proof_budget is the room its licence leaves the speed of light: the "
        "distance from its site to the nearest foreign land minus 12 nmi and the border error, "
        "and the largest RTT a landmark in its own data centre may measure within it (none: "
        "no RTT can prove the licence)",
    ]
    if colocated:
        lines.append(
            "co-located landmarks (in the chips' own data centre: they probe the chips beside "
            f"them over their own link, not through the emulated network): {', '.join(colocated)}"
        )
    return lines


def checks_passed(result: dict[str, Any]) -> bool:
    return all(value for key, value in result["checks"].items()
               if key not in ("honest_verified", "honest_total"))
