"""Operations tooling: migrations, deploy checks and rollbacks (docs/operations.md)."""
