"""HTTP links from a landmark to the verifier: a long-polling `TaskSource` and a `BatchSink`.

`VerifierTaskSource.next_tasks` long-polls `GET /v1/landmarks/{id}/tasks`; `VerifierBatchSink`
POSTs `MeasurementBatch.to_json()` to `/v1/measurements`. Uploads are idempotent by batch id on
the verifier, so retrying a batch whose answer was lost (timeout, verifier restart) never creates
duplicates: the sink retries transient failures with exponential backoff and raises when it
gives up, leaving the batch in the landmark's spool for the next delivery pass. A refusal that
judges the batch itself (400, 409, 413, 415, 422) raises `BatchRefusedError` at once, and the
landmark quarantines that batch; a refusal of the landmark's credentials or address (401, 403,
404) would refuse every batch alike, so it is retried like an outage until an operator fixes it.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from landmark_node.errors import BatchRefusedError, LandmarkError
from landmark_node.tasks import Task
from protocol.records import MeasurementBatch

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Statuses that judge the batch's bytes: the same upload can never succeed.
_REFUSED_STATUS = frozenset({400, 409, 413, 415, 422})


class UplinkError(LandmarkError):
    """The verifier stayed unreachable or refused the landmark itself (token, URL): retry later."""


class VerifierTaskSource:
    def __init__(self, client: httpx.AsyncClient, landmark_id: str, *, wait_s: float = 20.0,
                 error_backoff_s: float = 2.0) -> None:
        self._client = client
        self._landmark_id = landmark_id
        self._wait_s = wait_s
        self._error_backoff_s = error_backoff_s

    async def next_tasks(self) -> list[Task]:
        """Block until the verifier hands out tasks (an empty list after a quiet long-poll)."""
        try:
            response = await self._client.get(
                f"/v1/landmarks/{self._landmark_id}/tasks", params={"wait_s": self._wait_s},
                timeout=self._wait_s + 10.0)
            response.raise_for_status()
            return [Task(target_kind=t["target_kind"], target_id=t["target_id"], host=t["host"],
                         port=int(t["port"]), round_id=t["round_id"],
                         task_id=int(t["task_id"]))
                    for t in response.json()["tasks"]]
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            logger.warning("landmark %s: task poll failed (%s)", self._landmark_id, exc)
            await asyncio.sleep(self._error_backoff_s)
            return []


class VerifierBatchSink:
    def __init__(self, client: httpx.AsyncClient, *, attempts: int = 5,
                 backoff_base_s: float = 0.5) -> None:
        self._client = client
        self._attempts = attempts
        self._backoff_base_s = backoff_base_s

    async def deliver(self, batch: MeasurementBatch) -> None:
        last = "no attempt"
        for attempt in range(self._attempts):
            try:
                response = await self._client.post("/v1/measurements", json=batch.to_json())
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    body = response.json()
                    logger.info("batch %s delivered: %s accepted, %d rejected%s",
                                batch.batch_id, body.get("accepted"),
                                len(body.get("rejected", [])),
                                " (already had it)" if body.get("duplicate") else "")
                    return
                if response.status_code in _REFUSED_STATUS:
                    raise BatchRefusedError(f"verifier refused batch {batch.batch_id}: "
                                            f"{response.status_code} {response.text[:200]}")
                if response.status_code not in _RETRY_STATUS:
                    raise UplinkError(f"verifier refused landmark upload of batch "
                                      f"{batch.batch_id}: {response.status_code} "
                                      f"{response.text[:200]}")
                last = f"HTTP {response.status_code}"
            await asyncio.sleep(self._backoff_base_s * 2 ** attempt)
        raise UplinkError(f"batch {batch.batch_id} not delivered after {self._attempts} "
                          f"attempts ({last})")


def verifier_client(base_url: str, token: str, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """An HTTP client carrying the landmark's bearer token (never logged)."""
    return httpx.AsyncClient(base_url=base_url, timeout=timeout_s,
                             headers={"Authorization": f"Bearer {token}"})
