"""Fault injection on toy studies, larger than the CI tests: what each fault costs and what it leaves.

Scenarios (each a fresh toy study of ``--weights`` x ``--seeds`` trials, each driver in its own Unix
session with its own Ray temp dir, as an operator runs ``raycg``):

- ``disk-full-start``: the storage is full before the study starts (exit 2, one line, no study
  directory), then there is room again and the study runs;
- ``disk-full-mid``: the storage fills up once ``--after`` trials finished; the driver must stop
  with one line and a resume hint; then ``resume``;
- ``killed-driver``: ``kill -9`` of the driver alone once ``--after`` trials finished and another
  is ``--at-step`` epochs in; then ``resume``;
- ``ctrl-c``: SIGINT to the driver's process group (what a terminal's Ctrl-C does) at the same
  point; then ``resume``;
- ``deleted-tune`` / ``truncated-tune``: ``kill -9`` of the driver at that point, then ``STUDY/tune``
  deleted, or every file in it cut in half; then ``resume`` (Tune's folder is never read back);
- ``killed-worker``: ``kill -9`` of the Ray worker running a trial mid-training; Tune retries it;
- ``killed-node``: on ``raycg.cluster.local_cluster`` (fake autoscaling cluster, GPU trials, head
  without CPUs, ``--max-workers`` fake nodes), a whole worker node is killed mid-trial; the study
  must finish without help.

Reported per scenario: the exit code and last line of the faulted driver, processes of its session
and temp dir while it ran and after it ended (leaked), the resume's exit code and leaks, whether
every trial ended ok (``trials_lost``: grid trials without an ok result at the end), the finished
trials' result.json untouched (by hash, and one attempt each),
the work done twice (epochs + chunks, from the attempt records) and wall times.

    python benchmarks/fault_injection.py --seeds 3 --epochs 10 --json fault_injection.json
    python benchmarks/fault_injection.py --scenarios killed-node --max-workers 2

Needs a C compiler for the full-disk scenarios (an ``LD_PRELOAD`` shim, ``raycg._testing.fault_injection``).
Results from a 2-core machine shared with other jobs: see the JSON written with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from raycg._testing.fault_injection import (
    DiskFull,
    build_enospc_shim,
    driver_env,
    leftovers_after,
    poll,
    redone_units,
    result_hashes,
    start_driver,
    study_processes,
    trial_attempts,
)

SCENARIOS = ("disk-full-start", "disk-full-mid", "killed-driver", "ctrl-c", "deleted-tune", "truncated-tune",
             "killed-worker", "killed-node")


def toy_spec(args, name: str, storage: Path, **extra) -> dict[str, Any]:
    spec = {"name": name, "pipeline": "toy", "storage": str(storage),
            "grid": {"energy_weights": [float(w) for w in range(args.weights)], "seeds": args.seeds},
            "toy": {"epochs": args.epochs, "epoch_s": args.epoch_s, "chunks": args.chunks, "chunk_s": args.chunk_s},
            "resources": {"cpus": 1}, "concurrency": {"max_concurrent_trials": args.concurrency},
            "retries": {"max_failures": 3}}
    spec.update(extra)
    return spec


class Run:
    """One scenario's study: its spec, directories, drivers and measurements."""

    def __init__(self, args, name: str, work: Path, **spec_extra):
        self.args, self.name = args, name
        self.dir = work / name
        self.dir.mkdir(parents=True)
        self.storage = self.dir / "storage"
        self.study = self.storage / name
        self.spec = self.dir / "spec.yaml"
        self.spec.write_text(yaml.safe_dump(toy_spec(args, name, self.storage, **spec_extra)))
        self.temps: list[Path] = []
        self.report: dict[str, Any] = {"scenario": name}
        self.t0 = time.monotonic()

    def temp(self) -> Path:
        t = Path(tempfile.mkdtemp(prefix="rcgfi", dir="/tmp"))  # short: Ray's sockets live there
        self.temps.append(t)
        return t

    def driver(self, argv: list[str], label: str, env_wrap=None):
        temp = self.temp()
        env = driver_env(temp)
        if env_wrap:
            env = env_wrap(env)
        return start_driver(argv, env, self.dir / f"{label}.log"), temp

    def last_line(self, label: str) -> str:
        lines = (self.dir / f"{label}.log").read_text().strip().splitlines()
        return lines[-1] if lines else ""

    def done(self) -> set[str]:
        return {p.parent.name for p in self.study.glob("trials/*/result.json")}

    def busy_at(self, step: int) -> list[str]:
        done = self.done()
        out = []
        for p in self.study.glob("trials/*/status.json"):
            try:
                st = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if p.parent.name not in done and (st.get("step") or 0) >= step and st.get("phase") == "train":
                out.append(p.parent.name)
        return out

    def fault_point(self) -> list[str]:
        """Trials mid-training once ``--after`` trials finished (empty: not yet)."""
        return self.busy_at(self.args.at_step) if len(self.done()) >= self.args.after else []

    def resume(self, label: str = "resume") -> None:
        d, temp = self.driver(["study", "resume", str(self.study)], label)
        rc = d.wait(timeout=self.args.timeout)
        self.report[f"{label}_rc"] = rc
        self.report[f"{label}_leaked"] = leftovers_after(d.pid, temp)

    def outcome(self, finished_before: dict[str, str]) -> None:
        results = {}
        for p in self.study.glob("trials/*/result.json"):
            results[p.parent.name] = json.loads(p.read_text())
        after = result_hashes(self.study)
        redone = {t: redone_units(trial_attempts(self.study, t), self.args.epochs, self.args.chunks) for t in results}
        self.report.update(
            trials=len(results), all_ok=bool(results) and all(r["status"] == "ok" for r in results.values()),
            trials_lost=self.args.weights * self.args.seeds - sum(r["status"] == "ok" for r in results.values()),
            finished_before_fault=len(finished_before),
            finished_untouched=all(after.get(t) == h for t, h in finished_before.items())
            and all(len(trial_attempts(self.study, t)) == 1 for t in finished_before),
            redone_units_total=sum(redone.values()), redone_units_max=max(redone.values(), default=0),
            attempts_total=sum(len(trial_attempts(self.study, t)) for t in results),
            restarts=sum(max(0, len(trial_attempts(self.study, t)) - 1) for t in results),
            wall_s=round(time.monotonic() - self.t0, 1))

    def cleanup(self) -> None:
        from raycg.cluster.processes import end_processes, processes_naming

        for t in self.temps:
            end_processes(processes_naming(str(t)), grace_s=2.0)
            shutil.rmtree(t, ignore_errors=True)


def scenario_disk_full_start(run: Run, shim: Path) -> None:
    disk = DiskFull(shim, run.storage, run.dir / "full.flag")
    disk.fill()
    d, temp = run.driver(["study", "run", str(run.spec)], "run", disk.env)
    run.report.update(fault_rc=d.wait(timeout=run.args.timeout), fault_last_line=run.last_line("run"),
                      study_dir_left=run.storage.exists(), fault_leaked=leftovers_after(d.pid, temp))
    disk.free()
    d, temp = run.driver(["study", "run", str(run.spec)], "rerun")
    run.report.update(resume_rc=d.wait(timeout=run.args.timeout), resume_leaked=leftovers_after(d.pid, temp))
    run.outcome({})


def scenario_disk_full_mid(run: Run, shim: Path) -> None:
    disk = DiskFull(shim, run.storage, run.dir / "full.flag")
    d, temp = run.driver(["study", "run", str(run.spec)], "run", disk.env)
    poll(d, lambda: len(run.done()) >= run.args.after, run.args.timeout)
    finished = result_hashes(run.study)
    run.report["processes_while_running"] = len(study_processes(d.pid, temp))
    disk.fill()
    t = time.monotonic()
    run.report.update(fault_rc=d.wait(timeout=run.args.timeout), stop_after_full_s=round(time.monotonic() - t, 1),
                      fault_last_line=run.last_line("run"), fault_leaked=leftovers_after(d.pid, temp))
    disk.free()
    run.resume()
    run.outcome(finished)


def scenario_signal(run: Run, sig: int, group: bool) -> None:
    d, temp = run.driver(["study", "run", str(run.spec)], "run")
    hit = poll(d, run.fault_point, run.args.timeout)
    finished = result_hashes(run.study)
    run.report["processes_while_running"] = len(study_processes(d.pid, temp))
    if hit:
        os.killpg(d.pid, sig) if group else os.kill(d.pid, sig)
    run.report.update(fault_rc=d.wait(timeout=run.args.timeout), fault_last_line=run.last_line("run"),
                      fault_leaked=leftovers_after(d.pid, temp))
    run.resume()
    run.outcome(finished)


def scenario_tune_state(run: Run, how: str) -> None:
    """``kill -9`` of the driver mid-study, then Tune's experiment folder deleted or every file in it cut
    in half (what a full disk or a copy cut short leaves), then ``resume``."""
    d, temp = run.driver(["study", "run", str(run.spec)], "run")
    hit = poll(d, run.fault_point, run.args.timeout)
    finished = result_hashes(run.study)
    if hit:
        os.kill(d.pid, signal.SIGKILL)
    run.report.update(fault_rc=d.wait(timeout=run.args.timeout), fault_leaked=leftovers_after(d.pid, temp))
    tune_dir = run.study / "tune"
    files = [p for p in tune_dir.rglob("*") if p.is_file()]
    if how == "deleted":
        shutil.rmtree(tune_dir, ignore_errors=True)
    else:
        for f in files:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    run.report["tune_files_" + how] = len(files)
    run.resume()
    run.outcome(finished)


def scenario_killed_worker(run: Run) -> None:
    """``kill -9`` of the Ray worker running a trial mid-training: Tune retries it (no resume needed)."""
    d, temp = run.driver(["study", "run", str(run.spec)], "run")
    busy = poll(d, run.fault_point, run.args.timeout)
    finished = result_hashes(run.study)
    killed = None
    if busy:
        attempt = max(trial_attempts(run.study, busy[0]), key=lambda a: a.get("started_unix") or 0.0)
        killed = int(attempt["pid"])
        os.kill(killed, signal.SIGKILL)
    run.report.update(worker_killed=killed, fault_rc=d.wait(timeout=run.args.timeout),
                      fault_leaked=leftovers_after(d.pid, temp))
    run.outcome(finished)


def scenario_killed_node(run: Run) -> None:
    from raycg.cluster.local_cluster import cluster_processes, start_local_cluster, stop_local_cluster

    temp = run.temp()
    c = start_local_cluster(temp, max_workers=run.args.max_workers, gpus_per_worker=1, cpus_per_worker=1,
                            head_cpus=0, idle_timeout_minutes=0.5, include_dashboard=False)
    try:
        env = driver_env(temp)
        log = run.dir / "run.log"
        d = start_driver(["study", "run", str(run.spec), "--address", c.address], env, log)
        busy = poll(d, run.fault_point, run.args.timeout)
        finished = result_hashes(run.study)
        killed = []
        if busy:
            st = json.loads((run.study / "trials" / busy[0] / "status.json").read_text())
            procs = cluster_processes(temp, c)
            raylet = next(p for p in procs if f"--node_id={st['node_id']}" in " ".join(p.cmdline()))
            victims = [raylet, *raylet.children(recursive=True)]
            parent = raylet.parent()
            victims += [p for p in parent.children() if "log_monitor" in " ".join(p.cmdline())] if parent else []
            for p in victims:
                p.kill()
            killed = [p.pid for p in victims]
            t, t_unix = time.monotonic(), time.time()
        run.report.update(node_processes_killed=len(killed), fault_rc=d.wait(timeout=run.args.timeout),
                          fault_last_line=run.last_line("run"),
                          finish_after_kill_s=round(time.monotonic() - t, 1) if killed else None)
        if killed:  # when the lost trial started again (on the replacement node or another one)
            again = [a for a in trial_attempts(run.study, busy[0]) if a.get("started_unix", 0) > t_unix]
            run.report["lost_trial_restarted_after_s"] = round(min(a["started_unix"] for a in again) - t_unix, 1) \
                if again else None
            run.report["lost_trial_restored_from"] = again[0].get("restored_from") if again else None
        run.outcome(finished)
    finally:
        before = len(study_processes(c.session_id, temp))
        stop_local_cluster(temp, missing_ok=True)
        run.report.update(cluster_processes_before_down=before, leaked_after_down=study_processes(c.session_id, temp))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    p.add_argument("--weights", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--epoch-s", type=float, default=0.4)
    p.add_argument("--chunks", type=int, default=3)
    p.add_argument("--chunk-s", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--after", type=int, default=2, help="finished trials before the fault")
    p.add_argument("--at-step", type=int, default=3, help="epochs a running trial is in at the fault")
    p.add_argument("--max-workers", type=int, default=2, help="fake worker nodes (killed-node)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds any one driver may take")
    p.add_argument("--work", default=None, help="directory for the studies (default: a temporary one, removed)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SCENARIOS))
    if unknown:
        p.error(f"unknown scenarios: {', '.join(unknown)}")
    work = Path(args.work or tempfile.mkdtemp(prefix="raycg-faults-"))
    shim = build_enospc_shim(work / "shim")
    out = []
    for name in wanted:
        if name.startswith("disk-full") and shim is None:
            out.append({"scenario": name, "skipped": "no C compiler for the ENOSPC shim"})
            continue
        extra = {"resources": {"cpus": 1, "gpu": 1}, "concurrency": {"max_concurrent_trials": args.max_workers}} \
            if name == "killed-node" else {}
        run = Run(args, name, work, **extra)
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            if name == "disk-full-start":
                scenario_disk_full_start(run, shim)
            elif name == "disk-full-mid":
                scenario_disk_full_mid(run, shim)
            elif name == "killed-driver":
                scenario_signal(run, signal.SIGKILL, group=False)
            elif name == "ctrl-c":
                scenario_signal(run, signal.SIGINT, group=True)
            elif name in ("deleted-tune", "truncated-tune"):
                scenario_tune_state(run, name.split("-")[0])
            elif name == "killed-worker":
                scenario_killed_worker(run)
            else:
                scenario_killed_node(run)
        finally:
            run.cleanup()
        print(json.dumps(run.report, default=str), flush=True)
        out.append(run.report)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
