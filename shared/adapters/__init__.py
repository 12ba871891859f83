"""The ports' implementations: the only code that imports postgrest, storage3, replicate or boto3."""
