"""Declared sites and learned RTT baselines (docs/verifier.md, "Location alerts")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from geo.errors import GeoError
from geo.licence import DeclaredSite
from verifier import schemas, sites
from verifier.convert import chip_out
from verifier.deps import Admin, Reader, ServiceDep
from verifier.errors import InvalidInputError, NotFoundError
from verifier.store import Store

router = APIRouter(prefix="/v1", tags=["admin"])
IdPath = Annotated[str, Path(pattern=schemas.ID_PATTERN)]


def _site(body: schemas.SiteIn) -> DeclaredSite:
    try:
        return DeclaredSite(body.lat_deg, body.lon_deg)
    except GeoError as exc:  # the schema's bounds are the same; kept as the one definition
        raise InvalidInputError(str(exc)) from exc


@router.put("/chips/{chip_id}/site", response_model=schemas.SiteOut)
async def set_site(chip_id: IdPath, body: schemas.SiteIn, _: Admin,
                   service: ServiceDep) -> schemas.SiteOut:
    """Declare the data centre the chip is licensed at (its licence's `site`); resets the
    chip's learned RTT baseline, which was learned where it stood before."""
    chip, reset = await service.db.run(sites.set_site, chip_id, _site(body))
    last = await service.db.run(Store.last_verdict, chip_id)
    return schemas.SiteOut(chip=chip_out(chip, last), baseline_rows_reset=reset)


@router.delete("/chips/{chip_id}/site", response_model=schemas.SiteOut)
async def clear_site(chip_id: IdPath, _: Admin, service: ServiceDep) -> schemas.SiteOut:
    chip, reset = await service.db.run(sites.set_site, chip_id, None)
    last = await service.db.run(Store.last_verdict, chip_id)
    return schemas.SiteOut(chip=chip_out(chip, last), baseline_rows_reset=reset)


@router.get("/chips/{chip_id}/rtt-baseline", response_model=schemas.RttBaselinesOut)
async def rtt_baseline(chip_id: IdPath, _: Reader,
                       service: ServiceDep) -> schemas.RttBaselinesOut:
    chip = await service.db.run(Store.chip, chip_id)
    if chip is None:
        raise NotFoundError(f"no chip {chip_id}")
    policy = await service.db.run(Store.policy, chip.policy)
    rows = await service.db.run(Store.rtt_baselines, chip_id)
    return schemas.RttBaselinesOut(
        chip_id=chip_id, baseline_rounds=policy.baseline_rounds if policy else 0,
        items=[schemas.RttBaselineOut(**{k: v for k, v in row.to_json().items()
                                         if k != "chip_id"}) for row in rows])


@router.delete("/chips/{chip_id}/rtt-baseline", response_model=schemas.BaselineResetOut)
async def reset_rtt_baseline(chip_id: IdPath, _: Admin,
                             service: ServiceDep) -> schemas.BaselineResetOut:
    """Forget what was learned (after a legitimate move or a lasting route change)."""
    reset = await service.db.run(sites.reset_baseline, chip_id)
    return schemas.BaselineResetOut(chip_id=chip_id, baseline_rows_reset=reset)
