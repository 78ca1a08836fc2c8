"""One-machine cluster tools: a fake autoscaling Ray cluster, its node provider, process control.

``local_cluster``  start / stop / inspect a fake multi-node cluster (``raycg cluster up|down|status``)
``fake_provider``  the autoscaler's node provider, which replaces a lost node
``processes``      processes ended by PID only (never by name), the reaper of a driver's own Ray

Importing this package imports neither Ray nor the modules; each imports Ray only when used.
"""
