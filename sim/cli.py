"""`lightfence bench sim|plan ...` and `python -m sim sim|plan ...`: the simulator's command line.

The product's `lightfence` command imports nothing of this package: its `bench` subcommand
hands the rest of the command line to `main` here, and only when it is run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from sim.adversaries import ADVERSARY_NAMES, AdversaryParams
from sim.errors import SimError
from sim.latency import LatencyModel
from sim.target_plan import COLOCATED_RTT_MS
from sim.world import Scenario

if TYPE_CHECKING:
    from sim.simulate import SimulationRun

logger = logging.getLogger(__name__)


SIM_KEY_PROTECTION = ("software key: verdicts assume the host owner does not copy it "
                      "(a copied key answers from anywhere; tests/verifier/test_copy_attack.py)")


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Topology simulator: see docs/sim.md.")
    group = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    sim = group.add_parser(
        "sim",
        help="simulate chips, landmarks and adversaries; write results.json and PNG plots",
        description="Topology simulator: see docs/sim.md.",
    )
    sim.add_argument("--chips", type=int, default=1000)
    sim.add_argument("--landmarks", type=int, default=50)
    sim.add_argument("--adversary", choices=ADVERSARY_NAMES, default="none")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--out", type=Path, required=True, help="output directory")
    sim.add_argument("--smuggled-fraction", type=float, default=0.3)
    sim.add_argument("--workers", type=int, default=1, help="forked processes")
    sim.add_argument("--chunk-size", type=int, default=2000)
    sim.add_argument("--grid-km", type=float, default=75.0, help="fast-path cell size")
    sim.add_argument("--k-best", type=int, default=10, help="caps the fast path tests")
    sim.add_argument(
        "--robust-landmarks",
        type=int,
        default=1,
        help="verdicts must survive this many landmarks lying about their position",
    )
    sim.add_argument(
        "--no-audit",
        action="store_true",
        help="keep landmarks the mesh audit proves misplaced (the verifier drops them)",
    )
    sim.add_argument("--sample", type=int, default=40, help="chip-rounds replayed through assess")
    sim.add_argument("--resolution-km", type=float, default=5.0)
    sim.add_argument("--sites", type=Path, help="CSV of chip sites (default: bundled)")
    sim.add_argument("--landmark-sites", type=Path, help="CSV of landmark sites")
    sim.add_argument("--delay-ms", type=float, default=30.0)
    sim.add_argument("--silence-count", type=int, default=10)
    sim.add_argument("--relocate-rounds", type=int, default=4)
    sim.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a latency-model parameter (repeatable), e.g. loss_rate=0.05",
    )
    sim.add_argument("--no-plots", action="store_true")
    sim.add_argument("--no-progress", action="store_true")
    sim.set_defaults(handler=run_sim)

    planner = group.add_parser(
        "plan",
        help="choose K landmark sites that verify the most honest chips in given countries",
    )
    planner.add_argument("--countries", required=True, help="ISO alpha-3 codes, comma-separated")
    planner.add_argument("-k", type=int, default=8, help="landmarks to place")
    planner.add_argument("--chips-per-country", type=int, default=12)
    planner.add_argument("--candidate-radius-km", type=float, default=3000.0)
    planner.add_argument("--grid-km", type=float, default=150.0)
    planner.add_argument("--seed", type=int, default=0)
    planner.add_argument("--sites", type=Path, help="CSV of candidate and chip sites")
    planner.add_argument(
        "--target-share",
        type=float,
        help="target mode: add landmarks (metro or co-located) until this honest verified share",
    )
    planner.add_argument(
        "--faults", default="0,1", help="target mode: tolerated faulty landmarks f, comma-separated"
    )
    planner.add_argument("--max-landmarks", type=int, default=40, help="target mode: the cap")
    planner.add_argument("--holdout-seed", type=int, default=1, help="target mode: check chips")
    planner.add_argument("--holdout-chips-per-country", type=int, default=50)
    planner.add_argument(
        "--colocated-rtt-ms",
        type=float,
        default=COLOCATED_RTT_MS,
        help="target mode: round trip from a co-located landmark to its campus's chips",
    )
    planner.set_defaults(handler=run_plan)
    return parser


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    overrides: dict[str, str] = {}
    for item in args.latency:
        name, sep, value = item.partition("=")
        if not sep:
            raise SimError(f"--latency expects NAME=VALUE, got {item!r}")
        overrides[name.strip()] = value.strip()
    return Scenario(
        chips=args.chips,
        landmarks=args.landmarks,
        adversary=args.adversary,
        seed=args.seed,
        smuggled_fraction=args.smuggled_fraction,
        chunk_size=args.chunk_size,
        workers=args.workers,
        grid_km=args.grid_km,
        k_best=args.k_best,
        robust_landmarks=args.robust_landmarks,
        sample_size=args.sample,
        audit=not args.no_audit,
        resolution_km=args.resolution_km,
        latency=LatencyModel.with_overrides(overrides),
        adversary_params=AdversaryParams(
            delay_ms=args.delay_ms,
            silence_count=args.silence_count,
            relocate_rounds=args.relocate_rounds,
        ),
        sites_path=args.sites,
        landmark_sites_path=args.landmark_sites,
    )


def _plot_writer() -> Callable[[SimulationRun, Path], list[Path]]:
    """`sim.plots.write_plots`; a SimError naming the extra when matplotlib is not installed."""
    try:
        from sim.plots import write_plots
    except ModuleNotFoundError as exc:
        raise SimError(
            f"the plots need {exc.name}, which the 'sim' extra installs "
            "(pip install 'lightfence[sim]'); or pass --no-plots"
        ) from exc
    return write_plots


def run_sim(args: argparse.Namespace) -> int:
    from sim.simulate import simulate

    try:
        write_plots = None if args.no_plots else _plot_writer()
        scenario = scenario_from_args(args)
        out_dir: Path = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=args.no_progress,
            transient=True,
        ) as progress:
            task = progress.add_task("chips", total=scenario.chips)
            run = simulate(scenario, lambda done: progress.advance(task, done))
        figures = [] if write_plots is None else write_plots(run, out_dir)
    except (SimError, OSError) as exc:
        print(f"lightfence bench sim: {exc}", file=sys.stderr)
        return 2
    results = run.results
    results["figures"] = [p.name for p in figures]
    # Simulated chips sign with software keys and the adversaries never copy them: say so next
    # to every verdict count (docs/protocol.md, "Key provenance").
    results["key_protection"] = SIM_KEY_PROTECTION
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    summary = {
        "out": str(out_dir / "results.json"),
        "false_verifications": results["metrics"]["false_verifications"],
        "honest_verified_share": round(results["metrics"]["honest_verified_share"], 4),
        "false_violations": results["metrics"]["false_violations"],
        "fast_more_permissive_than_assess": results["cross_check"]["fast_more_permissive"],
        "wall_s": round(results["timing"]["wall_s"], 2),
        "peak_memory_mib": round(results["peak_memory"]["self_mib"], 1),
        "key_protection": SIM_KEY_PROTECTION,
    }
    print(json.dumps(summary))
    return 0


def _planner_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options both planners take."""
    return {
        "chips_per_country": args.chips_per_country,
        "candidate_radius_km": args.candidate_radius_km,
        "grid_km": args.grid_km,
        "seed": args.seed,
    }


def _target_report(args: argparse.Namespace, countries: tuple[str, ...]) -> dict[str, Any]:
    from sim.sites import load_sites
    from sim.target_plan import TargetRequest, plan_to_target, site_limits

    try:
        faults = tuple(int(f) for f in args.faults.split(",") if f.strip())
    except ValueError as exc:
        raise SimError(f"--faults expects integers, e.g. 0,1; got {args.faults!r}") from exc
    request = TargetRequest(
        countries=countries,
        target_share=args.target_share,
        faults=faults,
        max_landmarks=args.max_landmarks,
        holdout_chips_per_country=args.holdout_chips_per_country,
        holdout_seed=args.holdout_seed,
        colocated_rtt_ms=args.colocated_rtt_ms,
        **_planner_options(args),
    )
    sites = load_sites(args.sites)
    plans = plan_to_target(request, sites)
    return {
        "countries": list(countries),
        "target_share": request.target_share,
        "colocated_rtt_ms": request.colocated_rtt_ms,
        "plans": [p.to_json() for p in plans],
        "site_limits": [
            limit.to_json(request.colocated_rtt_ms) for limit in site_limits(request, sites)
        ],
    }


def _greedy_report(args: argparse.Namespace, countries: tuple[str, ...]) -> dict[str, Any]:
    from sim.planning import PlanRequest, plan
    from sim.sites import load_sites

    request = PlanRequest(countries=countries, k=args.k, **_planner_options(args))
    steps = plan(request, load_sites(args.sites))
    return {"countries": list(request.countries), "steps": [s.to_json() for s in steps]}


def run_plan(args: argparse.Namespace) -> int:
    countries = tuple(c.strip().upper() for c in args.countries.split(",") if c.strip())
    report = _target_report if args.target_share is not None else _greedy_report
    try:
        answer = report(args, countries)
    except SimError as exc:
        print(f"lightfence bench plan: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer))
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m sim") -> int:
    """Run `sim` or `plan`; `lightfence bench` calls this with its own name as `prog`."""
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # a no-op under `lightfence`, which configured it
    return int(args.handler(args))
