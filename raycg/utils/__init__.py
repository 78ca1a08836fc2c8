"""Small shared helpers: atomic output, hashing, provenance, progress."""
