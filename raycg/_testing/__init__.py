"""Support code for raycg's tests and benchmarks only (not a public API; may change at any time)."""
