"""Support code for raycg's tests and benchmarks only (not a public API; may change at any time).

``datasets``: small synthetic CG datasets with known structure (two-state hairpin chains, CLN025's
native Cα trace); ``fault_injection``: full disks, killed drivers, workers and nodes on a study.
"""
