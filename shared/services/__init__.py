"""The use cases: each public function takes one `Deps` container."""
