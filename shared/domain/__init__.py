"""Rules without I/O: the job and its states, progress, claims, storage paths, notices."""
