"""A local Replicate HTTP API for the stack and the tests (standard-library HTTP server).

Facts it copies come from the team reference (its Replicate notes, sections 1-9, and Replicate's
OpenAPI spec); where the real answer is unconfirmed, the emulator's choice is marked in code.

Python use::

    with ReplicateEmulator(api_token="r8_test") as emu:
        emu.add_model("twins")                       # the destination must exist
        client = replicate.Client(api_token="r8_test", base_url=emu.base_url)
        t = client.trainings.create(model=TRAINER_MODEL, version=TRAINER_VERSION,
                                    input={...}, destination="flurrty/twins")
        emu.settle(t.id)                             # or wait boot_seconds + train_seconds

API routes (all under /v1, `Authorization: Bearer|Token <api_token>`; errors are
application/problem+json; every answer has `ratelimit-remaining`/`ratelimit-reset`). The
route templates below are the keys of `emulator.calls` / `emulator.count(method, route)`:

    GET    /v1/account                       GET    /v1/hardware
    GET    /v1/files                         POST   /v1/files            (multipart)
    GET    /v1/files/{id}                    DELETE /v1/files/{id}
    GET    /v1/files/{id}/download
    GET    /v1/models                        POST   /v1/models
    GET    /v1/models/{owner}/{name}         DELETE /v1/models/{owner}/{name}
    GET    /v1/models/{owner}/{name}/versions
    GET    /v1/models/{owner}/{name}/versions/{version}
    DELETE /v1/models/{owner}/{name}/versions/{version}
    POST   /v1/models/{owner}/{name}/versions/{version}/trainings
    GET    /v1/trainings                     GET    /v1/trainings/{id}
    POST   /v1/trainings/{id}/cancel
    GET    /v1/predictions                   POST   /v1/predictions  (Prefer, Cancel-After)
    GET    /v1/predictions/{id}              POST   /v1/predictions/{id}/cancel
    GET    /v1/webhooks/default/secret
    GET    /delivery/{prefix}/{id}/trained_model.tar   (no auth, like replicate.delivery)
    GET    /delivery/{prefix}/{id}/{filename}          (prediction outputs, no auth)

Trainings: `starting` for boot_seconds, `processing` for train_seconds (logs grow with the
trainer's lines in train.py's order; `log_phases` sets each phase's share of the time), then
`succeeded` with output {version: "owner/name:<id>", weights} and a new version on the
destination whose schema is the trained predictor's. Bad input fails the training (not the
create call), as the real trainer does. `next_training_outcome()` makes upcoming trainings
end as `failed`/`canceled`/`aborted`; `settle()`/`finish_now()` end one now;
`seed_trainings(n, ...)` creates many at once for a benchmark; `stats()` counts trainings in
flight (now and at most).

Predictions run on versions trainings made: `starting` for predict_boot_seconds, then
`processing` for predict_seconds, then `succeeded` with a list of image URLs served here (real
webp/jpg/png whose pixels follow prompt and seed), removed with input and logs after
output_retention_seconds. `next_prediction_nsfw()` and `next_prediction_hangs()` switch the
next ones to the safety checker's failure or to never finishing.

Faults (`emulator.faults`), matched on the request path with `re.search`:

    faults.add(method|None, path_regex, kind, times=1, **params)
        kind "status":  status=503, retry_after (429 defaults to 1), body, detail, headers
        kind "slow":    seconds=2    sleep, then answer normally
        kind "timeout": seconds=35   same, past the Python client's 30 s read timeout
        kind "drop":                 close the connection without an answer
    faults.probability(p, kinds=("429","503","drop"), seed=None, method=None, path_regex="")
    faults.clear()

Webhook switches (`emulator.webhook_faults.add(kind, times=1, event=None)`): "lose" (never
sent), "duplicate" (sent twice, same webhook-id), "reorder" (a training's start/logs/output
events held back until after its completed event); `emulator.webhooks_enabled = False`
drops every webhook until switched back on.

Control over HTTP for other processes (JSON bodies, no auth, loopback only):

    GET    /_emulator/health
    POST   /_emulator/reset
    GET    /_emulator/faults              POST /_emulator/faults {method, path_regex, kind,
                                          times, ...params}      DELETE /_emulator/faults
    POST   /_emulator/faults/probability  {p, kinds, seed, method, path_regex}
    GET    /_emulator/calls               DELETE /_emulator/calls
    POST   /_emulator/config              {latency_seconds, boot_seconds, train_seconds,
                                          webhooks_enabled, predict_boot_seconds,
                                          predict_seconds, output_retention_seconds,
                                          log_phases}
    POST   /_emulator/models              {name, owner, visibility, hardware}
    POST   /_emulator/next-training-outcome {outcome, error, times}
    POST   /_emulator/next-prediction-nsfw  {times, flagged}
    POST   /_emulator/next-prediction-hang  {times}
    GET    /_emulator/stats               DELETE /_emulator/stats  (restart the maximum)
    POST   /_emulator/trainings/{id}/settle
    POST   /_emulator/trainings/{id}/finish {outcome, error}
    POST   /_emulator/trainings/{id}/timing {boot_seconds, train_seconds}
    GET    /_emulator/webhooks/deliveries
    POST   /_emulator/webhooks/faults     {kind, times, event}   DELETE same path
    POST   /_emulator/webhooks/wait       {timeout} -> {"idle": bool}

Standalone: `python -m devstack.replicate_emulator --port 8787 --api-token r8_local`.
"""

from devstack.replicate_emulator.faults import FAULT_KINDS, RANDOM_FAULT_KINDS, Faults
from devstack.replicate_emulator.server import ROUTE_TABLE, ReplicateEmulator
from devstack.replicate_emulator.store import OUTCOMES
from devstack.replicate_emulator.trainer import (
    TRAINER_MODEL,
    TRAINER_NAME,
    TRAINER_OWNER,
    TRAINER_VERSION,
)
from devstack.replicate_emulator.webhooks import WEBHOOK_FAULT_KINDS, WebhookFaults, sign_webhook

__all__ = [
    "FAULT_KINDS",
    "OUTCOMES",
    "RANDOM_FAULT_KINDS",
    "ROUTE_TABLE",
    "TRAINER_MODEL",
    "TRAINER_NAME",
    "TRAINER_OWNER",
    "TRAINER_VERSION",
    "WEBHOOK_FAULT_KINDS",
    "Faults",
    "ReplicateEmulator",
    "WebhookFaults",
    "sign_webhook",
]
