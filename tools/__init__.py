"""Developer tools: generators for the committed documents (run with `python -m tools.<name>`)."""
