"""`twin_previews` through PostgREST (the `PreviewStore` port): inserts with our own ids, PATCHes
filtered into compare-and-sets, the on-demand limit as the database function `request_previews`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.adapters.postgrest import PostgrestTable, to_db
from shared.domain.previews import Preview, PreviewStatus
from shared.errors import AppError, ErrorCode, UpstreamError

TABLE = "twin_previews"


def _refused() -> AppError:
    return AppError(ErrorCode.JOB_STATE_CHANGED, "The preview changed meanwhile; read it again.")


class PostgrestPreviewStore(PostgrestTable):
    def _run(
        self, operation: Callable[[], Any], refused: Callable[[], AppError] | None = None
    ) -> Any:
        return super()._run(operation, refused or _refused)

    def _table(self) -> Any:
        return self._client.table(TABLE)

    def insert_set(self, rows: Sequence[dict[str, Any]]) -> list[Preview]:
        body = [{k: to_db(v) for k, v in row.items()} for row in rows]
        # Ignoring duplicates makes the insert safe to repeat, and concurrent makers agree.
        self._run(
            lambda: (
                self._table()
                .upsert(body, on_conflict="id", ignore_duplicates=True, default_to_null=False)
                .retry(False)
                .execute()
            )
        )
        ids = [str(row["id"]) for row in rows]
        res = self._run(
            lambda: self._table().select("*").in_("id", ids).order("slot").retry(False).execute()
        )
        return [Preview.model_validate(r) for r in res.data]

    def request_on_demand(
        self, user_id: UUID, rows: Sequence[dict[str, Any]], per_day: int, now: datetime
    ) -> tuple[bool, int]:
        body = {
            "p_user": str(user_id),
            "p_rows": [{k: to_db(v) for k, v in row.items()} for row in rows],
            "p_per_day": per_day,
            "p_now": now.isoformat(),
        }
        # Safe to repeat: a set inserted already is found and not counted again.
        data = self._run(
            lambda: self._client.rpc("request_previews", body).retry(False).execute().data
        )
        return bool(data["accepted"]), int(data["used"])

    def get(self, preview_id: UUID) -> Preview | None:
        res = self._run(
            lambda: (
                self._table().select("*").eq("id", str(preview_id)).limit(1).retry(False).execute()
            )
        )
        return Preview.model_validate(res.data[0]) if res.data else None

    def _patch(
        self, preview_id: UUID, query: Callable[[], Any], landed: Callable[[Preview], bool]
    ) -> Preview | None:
        """A compare-and-set PATCH; when its answer is lost, the row says whether it landed."""
        attempts = 0

        def patch() -> Any:
            nonlocal attempts
            attempts += 1
            return query().retry(False).execute()

        try:
            res = self._run(patch)
        except UpstreamError:
            if (current := self.get(preview_id)) is not None and landed(current):
                return current
            raise
        if res.data:
            return Preview.model_validate(res.data[0])
        if attempts > 1 and (current := self.get(preview_id)) is not None and landed(current):
            return current
        return None

    def claim(
        self, preview_id: UUID, expected: UUID | None, token: UUID, now: datetime
    ) -> Preview | None:
        def query() -> Any:
            q = (
                self._table()
                .update({"claim_token": str(token), "claimed_at": now.isoformat()})
                .eq("id", str(preview_id))
                .eq("status", PreviewStatus.PENDING.value)
                .is_("prediction_id", "null")
                .is_("deleted_at", "null")
            )
            return (
                q.is_("claim_token", "null")
                if expected is None
                else q.eq("claim_token", str(expected))
            )

        return self._patch(preview_id, query, lambda row: row.claim_token == token)

    def update(
        self,
        preview_id: UUID,
        changes: dict[str, Any],
        *,
        expect_status: PreviewStatus | None = PreviewStatus.PENDING,
        expect_claim: UUID | None = None,
    ) -> Preview | None:
        body = {k: to_db(v) for k, v in changes.items()}

        def query() -> Any:
            q = self._table().update(body).eq("id", str(preview_id))
            if expect_status is not None:
                q = q.eq("status", expect_status.value)
            if expect_claim is not None:
                q = q.eq("claim_token", str(expect_claim))
            return q

        def landed(row: Preview) -> bool:
            dumped = row.model_dump()
            return all(to_db(dumped.get(k)) == v for k, v in body.items())

        return self._patch(preview_id, query, landed)

    def for_jobs(self, job_ids: Sequence[UUID]) -> list[Preview]:
        ids = [str(j) for j in job_ids]
        res = self._run(
            lambda: (
                self._table()
                .select("*")
                .in_("job_id", ids)
                .is_("deleted_at", "null")
                .order("created_at")
                .order("slot")
                .retry(False)
                .execute()
            )
        )
        return [Preview.model_validate(r) for r in res.data]

    def list_unfinished(self, limit: int) -> list[Preview]:
        res = self._run(
            lambda: (
                self._table()
                .select("*")
                .eq("status", PreviewStatus.PENDING.value)
                .is_("deleted_at", "null")
                .order("updated_at")
                .limit(limit)
                .retry(False)
                .execute()
            )
        )
        return [Preview.model_validate(r) for r in res.data]
