"""PNG figures of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geo.regions import country, country_codes
from sim.simulate import SimulationRun


def write_plots(run: SimulationRun, out_dir: Path) -> list[Path]:
    return [
        _error_cdf(run.results, out_dir / "error_cdf.png"),
        _verification_by_country(run.results, out_dir / "verification_by_country.png"),
        _world_map(run, out_dir / "world_map.png"),
    ]


def _error_cdf(results: dict[str, Any], path: Path) -> Path:
    errors = results["cross_check"]["calibrated_error_km"]["honest_sorted"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if errors:
        y = np.arange(1, len(errors) + 1) / len(errors)
        ax.step(errors, y, where="post")
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no honest chips sampled", ha="center", transform=ax.transAxes)
    ax.set_xlabel("calibrated estimate error (km)")
    ax.set_ylabel("share of honest chips")
    ax.set_title(f"Localisation error CDF (calibrated tier, n={len(errors)})")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _verification_by_country(results: dict[str, Any], path: Path, top: int = 40) -> Path:
    by_country = results["metrics"]["honest_by_country"]
    ranked = sorted(by_country.items(), key=lambda kv: (-kv[1]["verified_rate"], kv[0]))[:top]
    fig, ax = plt.subplots(figsize=(10, 4))
    if ranked:
        codes = [c for c, _ in ranked]
        ax.bar(codes, [v["verified_rate"] for _, v in ranked], color="tab:green")
        ax.tick_params(axis="x", rotation=90, labelsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("honest chips verified")
    ax.set_title(f"Verification rate per licensed country (top {top} of {len(by_country)})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _polygons(geometry: BaseGeometry | None) -> list[Polygon]:
    if geometry is None or geometry.is_empty:
        return []
    if isinstance(geometry, Polygon):
        return [geometry]
    return [p for part in getattr(geometry, "geoms", []) for p in _polygons(part)]


def _draw(ax: Axes, geometry: BaseGeometry | None, **style: Any) -> bool:
    """Fill the geometry's polygons; False if there was nothing to draw."""
    parts = _polygons(geometry)
    for part in parts:
        x, y = part.exterior.xy
        ax.fill(x, y, **style)
        style = {**style, "label": None}
    return bool(parts)


def _world_map(run: SimulationRun, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(12, 6))
    # One collection for every border: a patch per polygon costs ~10 s of axis-limit updates.
    borders = [
        np.asarray(part.exterior.coords)
        for code in country_codes()
        for part in _polygons(country(code).geometry)
    ]
    ax.add_collection(
        PolyCollection(borders, facecolors="#eeeeee", edgecolors="#999999", linewidths=0.3)
    )
    labelled: set[str] = set()  # one legend entry per class and region kind
    for class_name, sound, likely in run.regions:
        colour = "tab:blue" if class_name == "honest" else "tab:red"
        sound_label = f"sound region ({class_name})"
        if _draw(
            ax,
            sound,
            facecolor=colour,
            alpha=0.15,
            edgecolor=colour,
            linewidth=0.6,
            label=None if sound_label in labelled else sound_label,
        ):
            labelled.add(sound_label)
        likely_label = None if "likely region" in labelled else "likely region"
        if _draw(
            ax, likely, facecolor="tab:orange", alpha=0.45, edgecolor="none", label=likely_label
        ):
            labelled.add("likely region")
    world = run.world
    ax.scatter(
        world.claimed_lon,
        world.claimed_lat,
        s=10,
        c="black",
        marker="^",
        zorder=5,
        label="landmarks",
    )
    if world.liar is not None:
        liar = world.liar
        ax.scatter(
            [liar.true_lon_deg],
            [liar.true_lat_deg],
            s=40,
            c="red",
            marker="x",
            zorder=6,
            label="lying landmark (true place)",
        )
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 85)
    ax.set_aspect("equal")
    ax.set_title(
        f"{len(world.landmark_ids)} landmarks; sample sound regions (blue honest, red "
        "smuggled) and likely regions (orange)"
    )
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
