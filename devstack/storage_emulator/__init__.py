"""Supabase Storage API emulator: the endpoints storage3 2.34.1 calls, backed by real Postgres.

The real server (`supabase/storage`) cannot be installed from any registry (see
`reference/supabase.md` 5.3), so this module re-implements the part of its HTTP contract the
project uses, from its documented behaviour. What it copies on purpose:

- object rows live in `storage.objects` and every object query runs in a transaction with
  `set local role <jwt role>` and the `request.jwt.*` settings, so the project's storage RLS
  policies are what allow or deny (listing, download, upload, delete);
- errors are HTTP 400 (500 for internal ones) with `{"statusCode": "<code>", "code", "error",
  "message"}` in the body, which storage3 turns into `StorageApiError(.status == "409", ...)`;
- bucket limits (`file_size_limit` -> 413, `allowed_mime_types` -> 415), `x-upsert`, signed
  download and signed upload tokens (HS256 JWTs signed with the project secret).

Object bytes are stored at `<root>/<bucket>/<object name>/<version>`: one file per version, so an
upsert swaps versions atomically and `a/b` can coexist with `a/b/c` as in S3.

This module knows nothing about HTTP servers: `StorageEmulator.handle()` takes a parsed request
whose body is a stream and returns a response whose body may be an open file. `devstack.gateway`
serves it under `/storage/v1`.
"""

from devstack.storage_emulator.emulator import StorageEmulator
from devstack.storage_emulator.wire import (
    DEFAULT_UPLOAD_URL_TTL_SECONDS,
    StorageError,
    StorageRequest,
    StorageResponse,
)

__all__ = [
    "DEFAULT_UPLOAD_URL_TTL_SECONDS",
    "StorageEmulator",
    "StorageError",
    "StorageRequest",
    "StorageResponse",
]
