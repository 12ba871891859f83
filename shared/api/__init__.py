"""The Function URL edge: the resolver, the error mapping, request parsing, the token check."""
