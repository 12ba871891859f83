"""`twins` through PostgREST (the `TwinStore` port)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from shared.adapters.postgrest import PostgrestTable, to_db
from shared.domain.twin import Twin
from shared.errors import AppError, ErrorCode, UpstreamError

TABLE = "twins"


def _twin_changed() -> AppError:
    # The rules refused the write: the version may not be active (it is not completed, or it was
    # deleted meanwhile), or the twin started being deleted.
    return AppError(
        ErrorCode.TWIN_STATE_CHANGED,
        "The twin or its versions changed while we were updating it; read it again.",
    )


def account_gone() -> AppError:
    """A valid token whose user was deleted since it was issued: nothing may be made for them."""
    return AppError(
        ErrorCode.INVALID_TOKEN, "This account no longer exists; sign in again to continue."
    )


class PostgrestTwinStore(PostgrestTable):
    """`twins` through PostgREST. Each call is safe to repeat: reads, an insert with our own
    primary key (a repeat hits 23505 and reads the row back), PATCHes that set values."""

    def _run(
        self, operation: Callable[[], Any], refused: Callable[[], AppError] | None = None
    ) -> Any:
        return super()._run(operation, refused or _twin_changed)

    def insert(self, row: dict[str, Any]) -> Twin:
        from postgrest.exceptions import APIError

        body = {k: to_db(v) for k, v in row.items()}

        def insert() -> Any:
            try:
                return self._client.table(TABLE).insert(body).retry(False).execute()
            except APIError as exc:
                if exc.code == "23503" and "user_id" in f"{exc.message} {exc.details}":
                    raise account_gone() from exc
                raise

        try:
            res = self._run(insert)
        except (APIError, UpstreamError) as exc:
            if "id" not in row or (isinstance(exc, APIError) and exc.code != "23505"):
                raise
            if (existing := self.get(UUID(str(row["id"])))) is not None:
                return existing
            raise
        return Twin.model_validate(res.data[0])

    def get(self, twin_id: UUID) -> Twin | None:
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .eq("id", str(twin_id))
                .limit(1)
                .retry(False)
                .execute()
            )
        )
        return Twin.model_validate(res.data[0]) if res.data else None

    def list_owned(self, user_id: UUID) -> list[Twin]:
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .eq("user_id", str(user_id))
                .is_("deletion_requested_at", "null")
                .order("created_at", desc=True)
                .order("id")
                .retry(False)
                .execute()
            )
        )
        return [Twin.model_validate(r) for r in res.data]

    def update(self, twin_id: UUID, changes: dict[str, Any]) -> Twin | None:
        body = {k: to_db(v) for k, v in changes.items()}
        res = self._run(
            lambda: (
                self._client.table(TABLE).update(body).eq("id", str(twin_id)).retry(False).execute()
            )
        )
        return Twin.model_validate(res.data[0]) if res.data else None

    def list_deletion_due(self, limit: int) -> list[Twin]:
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .not_.is_("deletion_requested_at", "null")
                .is_("deleted_at", "null")
                .order("deletion_requested_at")
                .limit(limit)
                .retry(False)
                .execute()
            )
        )
        return [Twin.model_validate(r) for r in res.data]

    def delete(self, twin_id: UUID) -> None:
        self._run(
            lambda: self._client.table(TABLE).delete().eq("id", str(twin_id)).retry(False).execute()
        )
