"""The local stack: real Postgres and PostgREST, Storage and Replicate emulators, Function URLs.

Development and test tooling only; never deployed (the Lambda bundle is `functions/` + `shared/`).
"""
