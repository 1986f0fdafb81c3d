#!/usr/bin/env python3
"""Parafoudre against dnsmasq and unbound, in the same run, on loopback.

One command (see bench/README.md)::

    .venv/bin/python bench/run_bench.py [--duration 10] [--servers parafoudre,dnsmasq,unbound]
        [--workloads cached,blocked,mixed,latency,biglist,reload] [--rounds 1] [--rate 0]
        [--quick] [--output FILE] [--strict] [--keep]

It starts NSD as the authoritative upstream of a generated zone, starts every server under test
forwarding to it with the same blocklist, pins the servers to one core and dnsperf (and NSD) to
another, runs the dnsperf workloads on every server, and writes a Markdown table per workload:
q/s, average, p50 and p99 latency, server CPU µs per query, RSS, lost queries, and the ratios
parafoudre / dnsmasq (and / unbound). Every load is bounded in time (dnsperf -l), every wait is
bounded, every process started is stopped at the end, even on Ctrl-C or error.

Two more workloads start their own server instances, after the others are stopped: `biglist`
(start time and memory of every server with a 1,000,000-name list) and `reload` (parafoudre
answering 5,000 q/s while its compiled list is replaced five times, as the feeds updater does).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from floor import RESPONDER as FLOOR_RESPONDER  # bench/floor.py, beside this script

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "bench" / "results.md"

# Under a real TLD, as a commune's names are: the exfiltration detector judges names under a
# TLD that does not exist (.test) as a direct-mode tunnel would be, which no commune's web is.
ZONE = "bench.example.net"
ZONE_HOSTS = 20_000  # h<N>.ZONE A records; misses use *.miss.ZONE and nx.ZONE
CACHED_NAMES = 1_000  # names of the cached workload (and the 90 % of the mixed one)
BLOCKED_QUERY_NAMES = 1_000  # blocked names queried (half of them as www.<listed name>)
BLOCKLIST_FULL = 100_000
BLOCKLIST_QUICK = 1_000
LATENCY_QPS = 5_000
CLIENTS = 10  # dnsperf -c
TIMEOUT = 2  # dnsperf -t: a query unanswered after this many seconds is lost
# The mixed files are read once (dnsperf -n 1) so that a miss is never repeated; they are sized
# for this rate over the whole duration. A faster run ends early at the end of the file, which
# the results say; its q/s stay right.
MIXED_MAX_QPS = 250_000
LATENCY_SLICES = 5  # the latency load is run in this many turns per round (measure_latency)
SETTLE = 1.5  # seconds after each load before reading CPU and RSS (block log flush is 1 s)
READY_TIMEOUT = 60.0  # seconds for a server to answer after its start
DNSMASQ_CACHE = 10_000  # dnsmasq warns that more "may cause performance issues"
PARAFOUDRE_CACHE = 100_000
SERVERS = ("parafoudre", "dnsmasq", "unbound")
# A reference of the blocked-distinct workload, not a server under test: dnsmasq writing down
# every query as parafoudre writes down every block (issue 19 sets its target against dnsmasq,
# which keeps no record of what it blocked).
LOGGING_DNSMASQ = "dnsmasq-logging"
# On the servers started once. blocked-distinct and misses are first answers (issue 19): each
# query a name the server never saw, read once from its file.
MAIN_WORKLOADS = ("cached", "blocked", "blocked-distinct", "misses", "mixed", "latency")
ONCE = frozenset({"blocked-distinct", "misses", "mixed", "latency"})  # dnsperf -n 1
WORKLOADS = (*MAIN_WORKLOADS, "biglist", "reload")  # these two start instances of their own
# biglist: every server with a big list, alone, after a short warm-up: time to ready, memory.
BIGLIST_FULL = 1_000_000
BIGLIST_QUICK = 50_000
BIG_READY_TIMEOUT = 300.0  # seconds: a server reading a million names may take a while
BIG_WARM_BLOCKED = 2_000  # blocked names of the warm-up (half as www.<listed name>)
# reload: parafoudre under a fixed load while its compiled list is replaced RELOAD_SWAPS times.
RELOAD_LIST_FULL = BIGLIST_FULL
RELOAD_LIST_QUICK = BLOCKLIST_FULL
RELOAD_SWAPS = 5
RELOAD_POLL = 2.0  # seconds between the server's looks at the artifact (ListsHolder.watch)
RELOAD_DELTA = 1_000  # names each new list adds, and about as many it drops: a feed update
RELOAD_BLOCKED_SHARE = 10  # of every 100 queries of the reload load; the other 90 are cached
RELOAD_TARGET_MS = 50.0
RELOAD_LINE = re.compile(r"lists reloaded in ([\d.]+) ms: (\d+) blocklist entries")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")

# What each workload's answers must be, as rcode -> fraction: a server that answers wrongly
# (SERVFAIL, a blocked name resolved) is flagged, however fast it is.
EXPECTED = {
    "cached": {"NOERROR": 1.0},
    "blocked": {"NXDOMAIN": 1.0},
    "blocked-distinct": {"NXDOMAIN": 1.0},
    "misses": {"NOERROR": 0.5, "NXDOMAIN": 0.5},
    "mixed": {"NOERROR": 0.925, "NXDOMAIN": 0.075},
    "latency": {"NOERROR": 0.925, "NXDOMAIN": 0.075},
}
DESCRIPTION = {
    "cached": "{n:,} names of the zone, answered once before (warm cache), looped {speed}",
    "blocked": "{n:,} blocked names (half as www.<listed name>), warmed, looped {speed}",
    "blocked-distinct": "every query a listed name never asked before (d<N>.<listed name>), "
    "{speed}; the file is read once",
    "misses": "every query a name never asked before (half NOERROR, half NXDOMAIN from NSD), "
    "{speed}; the file is read once",
    "mixed": "90 % cached names, 5 % blocked, 5 % never-seen names (half NOERROR, half NXDOMAIN "
    "from NSD), {speed}; the file is read once, so no miss repeats",
    "latency": (
        "the mixed composition at a fixed {qps:,} q/s; latency of every query (dnsperf -v), "
        "the servers taking turns in short slices, each server's latencies pooled"
    ),
}


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


class MissingTools(BenchError):
    """A program the benchmark needs is not installed (exit code 3: a CI job may skip)."""


# --- small helpers ------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise BenchError("no free port on 127.0.0.1")


def dns_query(port: int, name: str, qtype: int = 1, timeout: float = 0.5) -> tuple[int, int]:
    """(rcode, answer count) of one UDP query to 127.0.0.1:port; OSError/TimeoutError if none."""
    qid = random.randrange(65536)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    msg = struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!2H", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(msg, ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            data = s.recv(4096)
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                return data[3] & 0x0F, struct.unpack("!H", data[6:8])[0]


def rcode_name(code: int) -> str:
    return RCODES[code] if code < len(RCODES) else f"RCODE{code}"


def clock_ticks() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group (a server and the workers it forked)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 of proc(5) (state); fields[2] is field 5 (pgrp).
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


@dataclass(frozen=True)
class CpuSample:
    """CPU time of a process group: per process, its threads' precise runtimes and its ticks."""

    procs: dict[int, tuple[frozenset[int], int, int]]  # pid -> (thread ids, ns, ticks)
    reaped_ticks: int  # children the leader has waited for (cutime + cstime)


def cpu_sample(pgid: int) -> CpuSample:
    procs: dict[int, tuple[frozenset[int], int, int]] = {}
    reaped = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])  # utime + stime, all threads, dead ones too
            if pid == pgid:
                reaped = int(fields[13]) + int(fields[14])  # cutime + cstime
            tids = frozenset(int(t) for t in os.listdir(f"/proc/{pid}/task"))
            ns = 0
            for tid in tids:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                    ns += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile; its time is in the leader's cutime if it was reaped
        procs[pid] = (tids, ns, ticks)
    return CpuSample(procs, reaped)


def cpu_used(before: CpuSample, after: CpuSample) -> float:
    """Seconds of CPU (user + system) the group used between two samples.

    Per process, the sum of its threads' runtimes from /proc/PID/task/TID/schedstat
    (nanoseconds) when its threads are the same in both samples; otherwise (a thread came or
    went) utime + stime from /proc/PID/stat, in clock ticks (10 ms), which count ended threads.
    """
    hz = clock_ticks()
    total = (after.reaped_ticks - before.reaped_ticks) / hz
    for pid, (tids, ns, ticks) in after.procs.items():
        old = before.procs.get(pid)
        if old is None:
            total += ticks / hz  # started during the load: all its time is the load's
        elif old[0] == tids and ns >= old[1] > 0:
            total += (ns - old[1]) / 1e9
        else:
            total += (ticks - old[2]) / hz
    return total


def memory_mb(pgid: int) -> tuple[float, float, int]:
    """(RSS, PSS, processes) of a process group, in MB; PSS shares pages among the workers."""
    rss = pss = 0
    pids = group_pids(pgid)
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss / 1024, pss / 1024, len(pids)


def first_line(cmd: Sequence[str], pattern: str) -> str:
    """The first match of pattern in the output of cmd (stdout and stderr), or 'unknown'."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


# --- the data: zone, blocklist, query files ------------------------------------------------------


@dataclass
class Data:
    zone_file: Path
    blocklist: list[str]
    blocklist_txt: Path  # parafoudre: one name per line
    dnsmasq_conf: Path  # address=/name/ lines
    unbound_conf: Path  # local-zone lines
    cached: Path
    blocked: Path
    cached_names: list[str]
    blocked_names: list[str]


def blocklist_names(size: int) -> list[str]:
    """The listed names, the same for every server: b<N>.blocked-<k>.test, 100 per parent."""
    parents = max(10, size // 100)
    return [f"b{i}.blocked-{i % parents}.test" for i in range(size)]


def generate(tmp: Path, blocklist_size: int, rng: random.Random) -> Data:
    zone = tmp / f"{ZONE}.zone"
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 3600",
        f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 3600",
        f"@ IN NS ns.{ZONE}.",
        "ns IN A 127.0.0.1",
        # Misses that resolve: every name under miss.ZONE has an address. Misses that do
        # not: names under nx.ZONE, which does not exist (NXDOMAIN with the SOA).
        "*.miss IN A 198.19.255.254",
    ]
    # RFC 2544 benchmarking addresses, 198.18.0.0/15.
    lines += [
        f"h{i} IN A 198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}" for i in range(ZONE_HOSTS)
    ]
    zone.write_text("\n".join(lines) + "\n")

    blocklist = blocklist_names(blocklist_size)
    txt = tmp / "blocklist.txt"
    txt.write_text("".join(f"{n}\n" for n in blocklist))
    dm = tmp / "dnsmasq-blocklist.conf"
    dm.write_text("".join(f"address=/{n}/\n" for n in blocklist))  # no address: NXDOMAIN
    ub = tmp / "unbound-blocklist.conf"
    ub.write_text("".join(f'local-zone: "{n}." always_nxdomain\n' for n in blocklist))

    cached_names = [f"h{i}.{ZONE}" for i in rng.sample(range(ZONE_HOSTS), CACHED_NAMES)]
    picked = rng.sample(blocklist, min(BLOCKED_QUERY_NAMES, len(blocklist)))
    blocked_names = [("www." + n if k % 2 else n) for k, n in enumerate(picked)]
    cached = tmp / "q-cached.txt"
    cached.write_text("".join(f"{n} A\n" for n in cached_names))
    blocked = tmp / "q-blocked.txt"
    blocked.write_text("".join(f"{n} A\n" for n in blocked_names))
    return Data(zone, blocklist, txt, dm, ub, cached, blocked, cached_names, blocked_names)


def first_answers_file(path: Path, data: Data, workload: str, lines: int, tag: str) -> None:
    """Names never asked before, one per line: listed ones (blocked-distinct: a name under a
    listed one, blocked by every server) or misses of the zone (half NOERROR, half NXDOMAIN)."""
    listed = data.blocklist
    with path.open("w") as fh:
        for start in range(0, lines, 100_000):
            if workload == "blocked-distinct":
                chunk = [
                    f"d{tag}{i}.{listed[i % len(listed)]} A\n"
                    for i in range(start, min(lines, start + 100_000))
                ]
            else:
                chunk = [
                    f"{tag}{i}.{'miss' if i % 2 == 0 else 'nx'}.{ZONE} A\n"
                    for i in range(start, min(lines, start + 100_000))
                ]
            fh.write("".join(chunk))


def mixed_file(path: Path, data: Data, lines: int, tag: str, rng: random.Random) -> None:
    """Blocks of 100 shuffled lines: 90 cached, 5 blocked, 5 misses never asked before.

    Miss names carry the tag (workload and round), so no miss is ever asked twice of a server;
    every server reads the same file, each with its own cache.
    """
    out: list[str] = []
    miss = 0
    with path.open("w") as fh:
        for _ in range(max(1, lines // 100)):
            block = [f"{n} A\n" for n in rng.choices(data.cached_names, k=90)]
            block += [f"{n} A\n" for n in rng.choices(data.blocked_names, k=5)]
            for _ in range(5):
                sub = "miss" if miss % 2 == 0 else "nx"
                block.append(f"{tag}{miss}.{sub}.{ZONE} A\n")
                miss += 1
            rng.shuffle(block)
            out += block
            if len(out) >= 100_000:
                fh.write("".join(out))
                out.clear()
        fh.write("".join(out))


# --- the processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    stderr: Path
    extra: dict[str, Path] = field(default_factory=dict)
    stopped: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stderr_text(self) -> str:
        try:
            return self.stderr.read_text(errors="replace")
        except OSError:
            return ""


class Processes:
    """Every process started, stopped in reverse order at the end whatever happens."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(
        self, name: str, port: int, cmd: list[str], tmp: Path, cpu: int | None, **kw: object
    ) -> Proc:
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        err = tmp / f"{name}.stderr"
        out = tmp / f"{name}.stdout"
        log(f"start {name}: {' '.join(cmd)}")
        with err.open("wb") as ferr, out.open("wb") as fout:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fout,
                stderr=ferr,
                start_new_session=True,  # its own process group: Ctrl-C is ours to handle
                **kw,  # type: ignore[call-overload]
            )
        proc = Proc(name, port, popen, err)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 10.0) -> None:
        if proc.stopped:
            return
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{proc.name} did not stop in {timeout:.0f} s: killing it")
        # Children left in its group (NSD's server and xfrd) too, whatever the leader did. While
        # a member is left the group id cannot be reused: the signal only reaches our processes.
        if proc.alive() or group_pids(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(5)
        proc.stopped = True

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        # Grandchildren orphaned by a leader that ended first (NSD's server process) were given
        # to us (become_subreaper): collect them, so that none is left as a zombie.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)


def become_subreaper() -> None:
    """Orphans of our children become ours (Linux prctl PR_SET_CHILD_SUBREAPER), not init's."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def wait_ready(
    proc: Proc,
    name: str,
    expect_rcode: int = 0,
    timeout: float = READY_TIMEOUT,
    since_start: bool = False,
) -> float:
    """Seconds until proc answers `name` with expect_rcode (counted from the process's start if
    since_start, else from now); BenchError when it dies or is late.

    Timing a start (since_start) asks every 20 ms with a 50 ms timeout: the kernel sends at
    most one "port unreachable" a second, so most probes before the bind just time out, and
    the 0.3 s of the other waits would make every start look 0.3 s long at least."""
    start = proc.started if since_start else time.monotonic()
    deadline = time.monotonic() + timeout
    probe, pause = (0.05, 0.02) if since_start else (0.3, 0.1)
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(
                f"{proc.name} exited with code {proc.popen.returncode}: "
                f"{proc.stderr_text().strip()[-1500:]}"
            )
        try:
            rcode, _ = dns_query(proc.port, name, timeout=probe)
        except OSError:  # TimeoutError, ConnectionRefused (ICMP port unreachable)
            time.sleep(pause)
            continue
        if rcode == expect_rcode:
            return time.monotonic() - start
        last = rcode_name(rcode)
        time.sleep(0.2)
    raise BenchError(f"{proc.name} not ready after {timeout:.0f} s (last answer: {last})")


def start_nsd(ps: Processes, tmp: Path, data: Data, cpu: int | None) -> Proc:
    port = free_port()
    d = tmp / "nsd"
    d.mkdir()
    conf = d / "nsd.conf"
    conf.write_text(
        f"""server:
  ip-address: 127.0.0.1@{port}
  do-ip6: no
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "{tmp}"
  database: ""
  zonelistfile: "{d}/zone.list"
  pidfile: "{d}/nsd.pid"
  xfrdfile: "{d}/xfrd.state"
  xfrdir: "{d}"
  logfile: "{d}/nsd.log"
  verbosity: 0
  hide-version: yes
  # Response rate limiting (on by default in Debian's NSD, 200 answers/s per client) would
  # drop most misses, all of which come from 127.0.0.1.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: {ZONE}
  zonefile: "{data.zone_file}"
"""
    )
    cmd = ["nsd", "-d", "-c", str(conf)]
    # NSD shares its core with dnsperf, which keeps that core busy at full load: real-time
    # priority lets NSD answer at once instead of after dnsperf's time slice (tens of ms), as a
    # responsive upstream would. It does little work (the misses only), so it starves nobody.
    if os.geteuid() == 0 and shutil.which("chrt"):
        cmd = ["chrt", "-f", "1", *cmd]
    proc = ps.start("nsd", port, cmd, tmp, cpu)
    wait_ready(proc, f"h0.{ZONE}")
    return proc


def compile_names(names: Sequence[str], out: Path) -> int:
    """Write the names as the feeds updater does: subtree entries in a compiled artifact,
    written to a temporary file of out's directory, fsynced, renamed over out."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from resolver import blocklist_file
    from resolver.core.blocklist import SUBTREE

    entries = [(n, SUBTREE, 0) for n in sorted(names)]
    return blocklist_file.write_atomic(out, entries, [("feed:bench", "malware")])


def _compile_list(txt: Path, out: Path) -> None:
    compile_names([n for n in txt.read_text().split() if n], out)


def start_parafoudre(
    ps: Processes,
    tmp: Path,
    data: Data,
    nsd: Proc,
    cpu: int | None,
    name: str = "parafoudre",
    detector: bool = True,
) -> Proc:
    state = tmp / f"{name}-state"
    state.mkdir()
    # The list as deployed: compiled by the feeds updater into a memory-mapped artifact (the
    # same names, as subtree entries), not an operator's text file.
    _compile_list(data.blocklist_txt, state / "blocklist.pfb")
    return launch_parafoudre(ps, tmp, name, state, nsd, cpu, detector=detector)


def launch_parafoudre(
    ps: Processes,
    tmp: Path,
    name: str,
    state: Path,
    nsd: Proc,
    cpu: int | None,
    level: str = "warning",
    detector: bool = True,
) -> Proc:
    """parafoudre serving the artifact state/blocklist.pfb (compiled beforehand), as deployed;
    detector=False turns the exfiltration detector off (bench/miss_hops.py's comparison)."""
    port = free_port()
    conf = tmp / f"{name}.yaml"
    # All the load comes from one client, 127.0.0.1: where parafoudre has a per-client rate
    # limit, keep it on (its cost is part of every query) but out of the load's reach.
    default = (REPO / "resolver" / "config" / "default.yaml").read_text()
    # One worker process: the server under test has one core, as dnsmasq and unbound have.
    workers = "  workers: 1\n" if re.search(r"^  workers:", default, re.MULTILINE) else ""
    rate_limit = ""
    if re.search(r"^rate_limit:", default, re.MULTILINE):
        rate_limit = "rate_limit:\n  enabled: true\n  rate: 1000000000.0\n  burst: 1000000000\n"
    # Same for the exfiltration detector's volume signals (per client and registered domain):
    # this one client asks thousands of never-seen names of the zone a second for the whole
    # commune, far past any information budget. The detector stays on and judges every query
    # (the names' shape, the strong signals); only the thresholds of how much one client may
    # ask are put out of the load's reach.
    volume_keys = (
        "rate",
        "names",
        "many_names",
        "info",
        "slow_info",
        "slow_names",
        "slow_volume",
        "volume",
        "unknown_tld_names",
        "nxdomain_answers",
        "escalate_info",
        # new data-like names in this many 10-minute slots: a soak of hours from one client
        # asking for the whole commune is "persistent" (above persist_span it never fires)
        "persist_slots",
    )
    present = [k for k in volume_keys if re.search(rf"^    {k}:", default, re.MULTILINE)]
    exfil = ""
    if present and re.search(r"^exfiltration:", default, re.MULTILINE):
        mode = "" if detector else "  mode: off\n"
        exfil = f"exfiltration:\n{mode}  thresholds:\n" + "".join(
            f"    {k}: 1000000000\n" for k in present
        )
    # And for the generated-domain detector: the one client stands for a whole commune, so its
    # NXDOMAIN answers would pile up as one machine's. The detector stays on (it meets every
    # answer on the way back); only how many never-resolved domains name a machine is out of
    # reach.
    if re.search(r"^dga:", default, re.MULTILINE):
        exfil += "dga:\n  domains: 1000000000\n  score: 1000000000.0\n"
    # The weather page stays on, as deployed, on a free port instead of the fixed 8053.
    dashboard = ""
    if re.search(r"^dashboard:\n(  .*\n|\s*\n)*  listen:", default, re.MULTILINE):
        dashboard = f'dashboard:\n  listen: "127.0.0.1:{free_port()}"\n'

    conf.write_text(
        f"""state_dir: "{state}"
server:
  listen: ["127.0.0.1:{port}"]
{workers}upstream:
  servers: ["127.0.0.1:{nsd.port}"]
acl:
  allow: ["127.0.0.0/8"]
blocking:
  mode: nxdomain
  compiled: "{state}/blocklist.pfb"
cache:
  size: {PARAFOUDRE_CACHE}
{rate_limit}{exfil}{dashboard}blocklog:
  path: "{state}/blocks.sqlite"
logging:
  level: {level}
"""
    )
    env = dict(os.environ)
    # The tree this script lives in, whatever is installed in the interpreter running it.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "resolver.cli", "serve", "-c", str(conf)]
    proc = ps.start(name, port, cmd, tmp, cpu, env=env, cwd=str(REPO))
    proc.extra["blocklog"] = state / "blocks.sqlite"
    return proc


def start_dnsmasq(ps: Processes, tmp: Path, data: Data, nsd: Proc, cpu: int | None) -> Proc:
    return launch_dnsmasq(ps, tmp, "dnsmasq", data.dnsmasq_conf, nsd, cpu)


def launch_dnsmasq(
    ps: Processes,
    tmp: Path,
    name: str,
    blocklist_conf: Path,
    nsd: Proc,
    cpu: int | None,
    query_log: Path | None = None,
) -> Proc:
    """dnsmasq forwarding to NSD; with query_log, it also writes a line for every query and
    its answer to that file (--log-queries), as parafoudre keeps a row of every block."""
    port = free_port()
    cmd = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",  # not /etc/dnsmasq.conf
        f"--conf-file={blocklist_conf}",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        f"--server=127.0.0.1#{nsd.port}",
        f"--cache-size={DNSMASQ_CACHE}",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        f"--pid-file={tmp}/{name}.pid",
    ]
    if query_log is None:
        cmd.append("--log-facility=-")
    else:
        # Its own log queue (--log-async, default 5 lines; 100 is the most it takes) so that a
        # slow disk never holds the answers up; the bench checks afterwards that none was lost.
        cmd += ["--log-queries", f"--log-facility={query_log}", "--log-async=100"]
    if os.geteuid() == 0:
        cmd.append("--user=root")  # do not depend on a 'nobody'/'dnsmasq' account
    return ps.start(name, port, cmd, tmp, cpu)


def start_logging_dnsmasq(
    ps: Processes, tmp: Path, data: Data, nsd: Proc, cpu: int | None
) -> Proc | None:
    """The blocked-distinct reference: dnsmasq keeping a record of every query. None if it
    does not start (the workload is then reported without it)."""
    query_log = tmp / "dnsmasq-queries.log"
    proc = launch_dnsmasq(ps, tmp, LOGGING_DNSMASQ, data.dnsmasq_conf, nsd, cpu, query_log)
    proc.extra["query_log"] = query_log
    try:
        wait_ready(proc, data.cached_names[0])
    except BenchError as exc:
        log(f"{LOGGING_DNSMASQ}: {exc}; blocked-distinct reported without it")
        ps.stop(proc)
        return None
    return proc


def logged_queries(proc: Proc) -> int:
    """How many queries the logging dnsmasq wrote down ("query[A] name from ..."), its log then
    emptied (a line per query and per answer: a few hundred MB a round otherwise)."""
    path = proc.extra["query_log"]
    n = 0
    with path.open("rb") as fh:
        for line in fh:
            n += b" query[" in line
    path.write_bytes(b"")  # dnsmasq appends (O_APPEND): it goes on at the start
    return n


def start_unbound(ps: Processes, tmp: Path, data: Data, nsd: Proc, cpu: int | None) -> Proc:
    return launch_unbound(ps, tmp, "unbound", data.unbound_conf, nsd, cpu)


def launch_unbound(
    ps: Processes, tmp: Path, name: str, blocklist_conf: Path, nsd: Proc, cpu: int | None
) -> Proc:
    port = free_port()
    conf = tmp / f"{name}.conf"
    conf.write_text(
        f"""server:
  interface: 127.0.0.1@{port}
  do-ip6: no
  do-not-query-localhost: no
  username: ""
  chroot: ""
  directory: "{tmp}"
  pidfile: "{tmp}/{name}.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  module-config: "iterator"
  qname-minimisation: no
  msg-cache-size: 16m
  rrset-cache-size: 32m
  access-control: 127.0.0.0/8 allow
  # .test is one of unbound's default local zones: forward it to NSD like everything else.
  local-zone: "test." nodefault
  domain-insecure: "test."
  include: "{blocklist_conf}"
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@{nsd.port}
remote-control:
  control-enable: no
"""
    )
    return ps.start(name, port, ["unbound", "-d", "-c", str(conf)], tmp, cpu)


STARTERS = {"parafoudre": start_parafoudre, "dnsmasq": start_dnsmasq, "unbound": start_unbound}


def check_answers(proc: Proc, data: Data) -> list[str]:
    """What the server answers wrongly among a few known names (empty list: all right)."""
    cases = [
        (data.cached_names[0], 0, True),
        (data.blocklist[0], 3, False),
        ("www." + data.blocklist[-1], 3, False),
        (f"check.miss.{ZONE}", 0, True),
        (f"check.nx.{ZONE}", 3, False),
    ]
    return check_cases(proc, cases)


def check_cases(proc: Proc, cases: Sequence[tuple[str, int, bool]]) -> list[str]:
    """Wrong answers among (name, expected rcode, must have an address) (empty list: none)."""
    problems = []
    for name, want, answer in cases:
        try:
            rcode, ancount = dns_query(proc.port, name, timeout=2.0)
        except OSError as exc:
            problems.append(f"{name}: no answer ({exc.__class__.__name__})")
            continue
        if rcode != want or (answer and ancount == 0):
            problems.append(
                f"{name}: {rcode_name(rcode)} with {ancount} answers, expected "
                f"{rcode_name(want)}{' with an address' if answer else ''}"
            )
    return problems


# --- dnsperf -------------------------------------------------------------------------------------


@dataclass
class Run:
    server: str
    workload: str
    sent: int = 0
    completed: int = 0
    lost: int = 0
    qps: float = 0.0
    runtime: float = 0.0
    avg_ms: float = float("nan")
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float = float("nan")  # reload workload only
    cpu_us: float = float("nan")
    cpu_pct: float = float("nan")
    rss_mb: float = float("nan")
    pss_mb: float = float("nan")
    procs: int = 1
    rcodes: dict[str, int] = field(default_factory=dict)
    eof: bool = False  # dnsperf reached the end of a read-once file before the time limit
    warnings: int = 0  # dnsperf "unexpected id" warnings: answers after the timeout
    values: list[float] = field(default_factory=list, repr=False)  # latency: seconds, each answer
    error: str = ""


def dnsperf_cmd(
    port: int,
    qfile: Path,
    limit: float,
    cpu: int | None,
    *,
    once: bool,
    qps: int = 0,
    verbose: bool = False,
) -> list[str]:
    cmd = ["taskset", "-c", str(cpu)] if cpu is not None else []
    cmd += ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile)]
    cmd += ["-l", f"{limit:g}", "-c", str(CLIENTS), "-t", str(TIMEOUT)]
    if once:
        cmd += ["-n", "1"]  # read the file once: its misses are never asked twice
    if qps:
        cmd += ["-Q", str(qps)]
    if verbose:
        cmd += ["-v"]  # one line per query with its latency
    return cmd


def run_dnsperf(cmd: list[str], limit: float) -> str:
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=limit + TIMEOUT + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"dnsperf did not end in time: {' '.join(cmd)}") from None
    return dnsperf_output(cmd, out.returncode, out.stdout, out.stderr)


def dnsperf_output(cmd: list[str], returncode: int, stdout: str, stderr: str) -> str:
    """dnsperf's whole output, or BenchError when it failed or was interrupted."""
    if "Testing complete (interruption)" in stdout:
        raise BenchError("dnsperf was interrupted")
    if returncode != 0 or "Statistics:" not in stdout:
        raise BenchError(f"dnsperf failed (exit {returncode}): {' '.join(cmd)}\n{stderr[-1000:]}")
    return stdout + stderr


def parse_dnsperf(text: str, run: Run) -> None:
    def num(pattern: str) -> float:
        m = re.search(pattern, text)
        if not m:
            raise BenchError(f"dnsperf output without {pattern!r}:\n{text[-2000:]}")
        return float(m.group(1))

    run.sent = int(num(r"Queries sent:\s+(\d+)"))
    run.completed = int(num(r"Queries completed:\s+(\d+)"))
    run.lost = int(num(r"Queries lost:\s+(\d+)"))
    run.runtime = num(r"Run time \(s\):\s+([\d.]+)")
    run.qps = num(r"Queries per second:\s+([\d.]+)")
    if run.completed:
        run.avg_ms = num(r"Average Latency \(s\):\s+([\d.]+)") * 1000
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        run.rcodes = {k: int(v) for k, v in re.findall(r"([A-Z0-9]+) (\d+) \(", m.group(1))}
    run.eof = "Testing complete (end of file)" in text
    run.warnings = text.count("unexpected (maybe timed out) id")


def latencies(text: str, lost: int) -> tuple[float, float, float]:
    """(average, p50, p99) in ms from dnsperf -v lines "> RCODE name type seconds".

    A lost query counts as the timeout in the percentiles: losing it is worse than answering
    late. (Lost queries are printed "> T name type" or "> I name type", without a latency.)
    """
    return latency_stats(latency_values(text), lost)


def latency_values(text: str) -> list[float]:
    """Every answered query's latency in seconds, from dnsperf -v's lines."""
    return [float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", text, re.MULTILINE)]


def latency_stats(answered: list[float], lost: int) -> tuple[float, float, float]:
    """(average of the answered, p50, p99) in ms; the lost count as the timeout."""
    if not answered:
        return float("nan"), float("nan"), float("nan")
    avg = statistics.fmean(answered) * 1000
    values = sorted([*answered, *[float(TIMEOUT)] * lost])

    def pct(p: float) -> float:
        return values[min(len(values) - 1, int(len(values) * p))] * 1000

    return avg, pct(0.50), pct(0.99)


def measure(
    proc: Proc,
    workload: str,
    qfile: Path,
    duration: float,
    load_cpu: int | None,
    save: Path,
    rate: int = 0,
) -> Run:
    run = Run(proc.name, workload)
    once = workload in ONCE
    verbose = workload == "latency"
    qps = LATENCY_QPS if verbose else rate
    cmd = dnsperf_cmd(proc.port, qfile, duration, load_cpu, once=once, qps=qps, verbose=verbose)
    if not proc.alive():
        run.error = f"{proc.name} is not running (exit code {proc.popen.returncode})"
        return run
    before = cpu_sample(proc.pid)
    try:
        text = run_dnsperf(cmd, duration)
        save.write_text(" ".join(cmd) + "\n" + text)  # kept with --keep
        time.sleep(SETTLE)  # work the load left behind (block log writes) is the load's too
        used = cpu_used(before, cpu_sample(proc.pid))
        parse_dnsperf(text, run)
        run.rss_mb, run.pss_mb, run.procs = memory_mb(proc.pid)
    except (BenchError, OSError) as exc:
        run.error = str(exc).splitlines()[0]
        return run
    if run.completed:
        run.cpu_us = used / run.completed * 1e6
    if run.runtime:
        run.cpu_pct = used / run.runtime * 100
    if verbose:
        run.values = latency_values(text)
        run.avg_ms, run.p50_ms, run.p99_ms = latency_stats(run.values, run.lost)
    return run


def keep(run: Run, results: dict[str, dict[str, list[Run]]], failures: list[str]) -> None:
    """Record one run of a server under test, and say how it went."""
    results[run.workload].setdefault(run.server, []).append(run)
    if run.error:
        log(f"  {run.server}: {run.error}")
        failures.append(f"{run.server} {run.workload}: {run.error}")
        return
    p99 = f", p99 {run.p99_ms:.3f} ms" if run.p99_ms is not None else ""
    log(
        f"  {run.server}: {run.qps:,.0f} q/s, avg {run.avg_ms:.3f} ms{p99}, "
        f"{run.cpu_us:.2f} µs CPU/query ({run.cpu_pct:.0f} % CPU), "
        f"lost {run.lost}/{run.sent}, rcodes {run.rcodes}"
    )


def pooled(runs: Sequence[Run]) -> Run:
    """The slices of one server's latency load as one run: counts and CPU summed, every
    answer's latency pooled (percentiles of the whole, not a median of the slices')."""
    out = Run(runs[0].server, runs[0].workload)
    failed = [r.error for r in runs if r.error]
    if failed:
        out.error = failed[0]
        return out
    used = sum(r.cpu_us * r.completed / 1e6 for r in runs if r.completed)
    out.sent = sum(r.sent for r in runs)
    out.completed = sum(r.completed for r in runs)
    out.lost = sum(r.lost for r in runs)
    out.runtime = sum(r.runtime for r in runs)
    out.warnings = sum(r.warnings for r in runs)
    out.eof = any(r.eof for r in runs)
    for r in runs:
        for code, n in r.rcodes.items():
            out.rcodes[code] = out.rcodes.get(code, 0) + n
    out.rss_mb, out.pss_mb, out.procs = runs[-1].rss_mb, runs[-1].pss_mb, runs[-1].procs
    if out.runtime:
        out.qps = out.completed / out.runtime
        out.cpu_pct = used / out.runtime * 100
    if out.completed:
        out.cpu_us = used / out.completed * 1e6
    out.values = [v for r in runs for v in r.values]
    out.avg_ms, out.p50_ms, out.p99_ms = latency_stats(out.values, out.lost)
    return out


def measure_latency(
    servers: dict[str, Proc],
    data: Data,
    tmp: Path,
    rnd: int,
    args: argparse.Namespace,
    load_cpu: int | None,
    rng: random.Random,
) -> dict[str, Run]:
    """The latency load in LATENCY_SLICES short slices, the servers taking turns within each
    slice (the first of a slice goes last in the next): a noisy spell of the machine, which a
    p99 shows at once, then falls on every server alike instead of on whoever ran then."""
    slices: dict[str, list[Run]] = {s: [] for s in servers}
    length = args.duration / LATENCY_SLICES
    order = list(servers)
    for k in range(LATENCY_SLICES):
        qfile = tmp / f"q-latency-{rnd}-{k}.txt"
        mixed_file(qfile, data, int(LATENCY_QPS * 1.2 * length) + 1000, f"l{rnd}s{k}x", rng)
        for s in order:
            save = tmp / f"dnsperf-{s}-latency-{rnd}-{k}.txt"
            slices[s].append(measure(servers[s], "latency", qfile, length, load_cpu, save))
        qfile.unlink()
        order = order[1:] + order[:1]
    return {s: pooled(runs) for s, runs in slices.items()}


def start_floor(ps: Processes, tmp: Path, cpu: int | None) -> Proc | None:
    """bench/floor.py's do-nothing responder, pinned like the servers; None if it fails."""
    port = free_port()
    script = tmp / "floor_responder.py"
    script.write_text(FLOOR_RESPONDER)
    proc = ps.start("python-floor", port, [sys.executable, str(script), str(port)], tmp, cpu)
    try:
        wait_ready(proc, "h1." + ZONE)
    except BenchError as exc:
        log(f"python floor: {exc}; latency reported without it")
        ps.stop(proc)
        return None
    return proc


def measure_logging(
    proc: Proc, qfile: Path, tmp: Path, rnd: int, args: argparse.Namespace, load_cpu: int | None
) -> Run:
    """The blocked-distinct load on dnsmasq logging every query; a note if its log missed any."""
    save = tmp / f"dnsperf-{proc.name}-blocked-distinct-{rnd}.txt"
    run = measure(proc, "blocked-distinct", qfile, args.duration, load_cpu, save, args.rate)
    if run.error:
        log(f"  {proc.name}: {run.error}")
        return run
    logged = logged_queries(proc)
    log(f"  {proc.name}: {run.cpu_us:.2f} µs CPU/query, {logged:,} of {run.completed:,} logged")
    if logged < run.completed:
        run.error = f"its log has {logged:,} of the {run.completed:,} queries answered"
    return run


def warm(proc: Proc, data: Data, load_cpu: int | None) -> None:
    for qfile in (data.cached, data.blocked):
        text = run_dnsperf(dnsperf_cmd(proc.port, qfile, 30, load_cpu, once=True), 30)
        r = Run(proc.name, "warm")
        parse_dnsperf(text, r)
        if r.lost:
            log(f"warning: {proc.name} lost {r.lost} of {r.sent} queries warming {qfile.name}")


# --- biglist and reload: server instances of their own ------------------------------------------


@dataclass
class BigList:
    """A big blocklist in every server's format, and the names the workloads ask of it."""

    size: int
    dir: Path
    names: list[str]
    blocked_names: list[str]  # asked: a sample of the list, half of it as www.<listed name>
    files: dict[str, Path] = field(default_factory=dict)  # server -> its list file
    compile_s: float = float("nan")  # parafoudre's artifact, as `parafoudre feeds update` would

    @classmethod
    def make(cls, tmp: Path, size: int, rng: random.Random) -> BigList:
        d = tmp / f"biglist-{size}"
        d.mkdir()
        names = blocklist_names(size)
        picked = rng.sample(names, min(BIG_WARM_BLOCKED, size))
        blocked = [("www." + n if k % 2 else n) for k, n in enumerate(picked)]
        return cls(size, d, names, blocked)

    def file(self, server: str) -> Path:
        """The list in the server's format, written the first time it is asked for."""
        if server in self.files:
            return self.files[server]
        log(f"writing the {self.size:,}-name list for {server}")
        if server == "parafoudre":
            path = self.dir / "blocklist.pfb"
            t0 = time.monotonic()
            compile_names(self.names, path)
            self.compile_s = time.monotonic() - t0
        elif server == "dnsmasq":
            path = self.dir / "dnsmasq-blocklist.conf"
            path.write_text("".join(f"address=/{n}/\n" for n in self.names))
        else:
            path = self.dir / "unbound-blocklist.conf"
            path.write_text("".join(f'local-zone: "{n}." always_nxdomain\n' for n in self.names))
        self.files[server] = path
        return path

    def cases(self, data: Data) -> list[tuple[str, int, bool]]:
        return [
            (data.cached_names[0], 0, True),
            (self.names[0], 3, False),
            (self.names[len(self.names) // 2], 3, False),
            ("www." + self.names[-1], 3, False),
            (f"check.miss.{ZONE}", 0, True),
        ]


def memory_detail(pgid: int) -> dict[str, float]:
    """RSS, PSS, anonymous and file-backed resident memory (MB) of a process group."""
    kb = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0, "Pss": 0}
    pids = group_pids(pgid)
    for pid in pids:
        for src in (f"/proc/{pid}/status", f"/proc/{pid}/smaps_rollup"):
            with contextlib.suppress(OSError), open(src) as fh:
                for line in fh:
                    key = line.split(":", 1)[0]
                    if key in kb and (key == "Pss") == src.endswith("smaps_rollup"):
                        kb[key] += int(line.split()[1])
    out = {k: v / 1024 for k, v in kb.items()}
    out["procs"] = float(len(pids))
    return out


def verbose_check(text: str, blocked: set[str]) -> tuple[int, int, list[str]]:
    """(answers, wrong answers, a few of them) from dnsperf -v lines "> RCODE name type s":
    a name of `blocked` must get NXDOMAIN, every other name NOERROR."""
    checked = wrong = 0
    examples: list[str] = []
    for m in re.finditer(r"^> (\S+) (\S+) \S+ [\d.]+$", text, re.MULTILINE):
        rcode, name = m.group(1), m.group(2).rstrip(".").lower()
        want = "NXDOMAIN" if name in blocked else "NOERROR"
        checked += 1
        if rcode != want:
            wrong += 1
            if len(examples) < 3:
                examples.append(f"{name} {rcode} (expected {want})")
    return checked, wrong, examples


def big_warm(proc: Proc, big: BigList, data: Data, load_cpu: int | None, tmp: Path) -> str:
    """Ask every cached and every blocked name twice (misses, then cache hits); "" if every
    answer was right, else what was wrong."""
    qfile = big.dir / "q-warm.txt"
    if not qfile.exists():
        names = data.cached_names + big.blocked_names
        random.Random(len(names)).shuffle(names)
        qfile.write_text("".join(f"{n} A\n" for n in names))
    blocked = set(big.blocked_names)
    problems = []
    for k in range(2):
        cmd = dnsperf_cmd(proc.port, qfile, 60, load_cpu, once=True, verbose=True)
        text = run_dnsperf(cmd, 60)
        (tmp / f"dnsperf-{proc.name}-warm{k}.txt").write_text(" ".join(cmd) + "\n" + text)
        r = Run(proc.name, "warm")
        parse_dnsperf(text, r)
        checked, wrong, examples = verbose_check(text, blocked)
        if r.lost or wrong or checked != r.sent:
            problems.append(
                f"pass {k + 1}: {wrong} wrong answers of {checked}, {r.lost} lost of {r.sent}"
                + (f" ({'; '.join(examples)})" if examples else "")
            )
    return "; ".join(problems)


@dataclass
class BigRow:
    server: str
    size: int
    ready_s: float = float("nan")
    mem: dict[str, float] = field(default_factory=dict)
    queries: int = 0
    check: str = ""
    error: str = ""


def run_biglist(
    ps: Processes,
    tmp: Path,
    big: BigList,
    data: Data,
    nsd: Proc,
    servers: Sequence[str],
    server_cpu: int | None,
    load_cpu: int | None,
) -> list[BigRow]:
    """Each server alone with the big list: time until it answers, memory after a warm-up."""
    rows = []
    for s in SERVERS:
        if s not in servers:
            continue
        row = BigRow(s, big.size)
        rows.append(row)
        name = f"{s}-biglist"
        try:
            path = big.file(s)
            if s == "parafoudre":
                state = tmp / f"{name}-state"
                state.mkdir()
                shutil.copy(path, state / "blocklist.pfb")
                proc = launch_parafoudre(ps, tmp, name, state, nsd, server_cpu)
            elif s == "dnsmasq":
                proc = launch_dnsmasq(ps, tmp, name, path, nsd, server_cpu)
            else:
                proc = launch_unbound(ps, tmp, name, path, nsd, server_cpu)
            try:
                row.ready_s = wait_ready(
                    proc, data.cached_names[0], timeout=BIG_READY_TIMEOUT, since_start=True
                )
                problems = check_cases(proc, big.cases(data))
                warm_problem = big_warm(proc, big, data, load_cpu, tmp)
                if warm_problem:
                    problems.append(f"warm-up: {warm_problem}")
                row.queries = 2 * (len(data.cached_names) + len(big.blocked_names))
                row.check = "WRONG: " + "; ".join(problems) if problems else "ok"
                time.sleep(SETTLE)
                if not proc.alive():
                    raise BenchError(f"{name} exited with code {proc.popen.returncode}")
                row.mem = memory_detail(proc.pid)
            finally:
                ps.stop(proc)
        except (BenchError, OSError) as exc:
            row.error = str(exc).splitlines()[0]
            continue
        log(
            f"  {s}: ready {row.ready_s:.1f} s, RSS {row.mem['VmRSS']:.1f} MB, "
            f"PSS {row.mem['Pss']:.1f} MB, answers {row.check}"
        )
    return rows


@dataclass
class ReloadResult:
    size: int
    load_s: float = 0.0
    base: Run | None = None  # the same load without reloads
    load: Run | None = None
    base_check: str = ""
    load_check: str = ""
    swaps: int = 0  # lists renamed over the configured path during the load
    durations_ms: list[float] = field(default_factory=list)  # from the server's log lines
    entries: list[int] = field(default_factory=list)  # as the server logged them
    expected: list[int] = field(default_factory=list)  # entries of each new list
    seen_s: list[float] = field(default_factory=list)  # rename -> log line
    compile_s: float = float("nan")
    rss_before: float = float("nan")
    rss_after: float = float("nan")
    notes: list[str] = field(default_factory=list)
    error: str = ""
    skipped: str = ""  # why the workload did not run


def reload_lines(proc: Proc) -> list[tuple[float, int]]:
    """(ms, entries) of every "lists reloaded in X ms: N blocklist entries" line so far."""
    return [(float(ms), int(n)) for ms, n in RELOAD_LINE.findall(proc.stderr_text())]


def reload_file(path: Path, data: Data, big: BigList, lines: int, rng: random.Random) -> None:
    """Blocks of 100 shuffled lines: cached names and blocked names, no miss (the file loops)."""
    out: list[str] = []
    blocked = RELOAD_BLOCKED_SHARE
    for _ in range(max(1, lines // 100)):
        block = rng.choices(data.cached_names, k=100 - blocked)
        block += rng.choices(big.blocked_names, k=blocked)
        rng.shuffle(block)
        out += [f"{n} A\n" for n in block]
    path.write_text("".join(out))


def reload_load(
    proc: Proc,
    qfile: Path,
    load_s: float,
    load_cpu: int | None,
    save: Path,
    blocked: set[str],
    during: list[Path],
    target: Path,
    res: ReloadResult,
) -> tuple[Run, str]:
    """dnsperf at LATENCY_QPS for load_s; meanwhile each file of `during` is renamed over
    `target`, the next one once the server has logged its reload. (Run, answers check)."""
    cmd = dnsperf_cmd(proc.port, qfile, load_s, load_cpu, once=False, qps=LATENCY_QPS, verbose=True)
    run = Run(proc.name, "reload")
    start = time.monotonic()
    # Its output goes to a file, not a pipe: nobody reads a pipe while the lists are renamed.
    with save.open("wb") as fh:
        perf = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
    try:
        if during:
            time.sleep(1.0)
        for k, path in enumerate(during):
            if time.monotonic() - start > load_s - (RELOAD_POLL + 2.0):
                res.notes.append(f"the load ended before list {k + 1} of {len(during)}")
                break
            before = len(reload_lines(proc))
            renamed = time.monotonic()
            # The last step of `parafoudre feeds update` (blocklist_file.write_atomic): the
            # complete new file renamed over the configured one, then the directory synced.
            os.replace(path, target)
            dfd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            res.swaps += 1
            deadline = renamed + 2 * RELOAD_POLL + 5
            while time.monotonic() < deadline and len(reload_lines(proc)) == before:
                time.sleep(0.02)
            if len(reload_lines(proc)) == before:
                res.notes.append(f"list {k + 1}: no reload logged {deadline - renamed:.0f} s on")
                break
            res.seen_s.append(time.monotonic() - renamed)
            time.sleep(0.5)  # let the cache fill again before the next list
        try:
            perf.wait(timeout=load_s + TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"dnsperf did not end in time: {' '.join(cmd)}") from None
    finally:
        if perf.poll() is None:
            perf.kill()
            perf.wait()
    text = save.read_text(errors="replace")  # stdout and stderr
    try:
        dnsperf_output(cmd, perf.returncode, text, "")
    except BenchError as exc:
        raise BenchError(f"{exc}{text[-1000:]}") from None
    parse_dnsperf(text, run)
    run.avg_ms, run.p50_ms, run.p99_ms = latencies(text, run.lost)
    values = [float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", text, re.MULTILINE)]
    run.max_ms = max(values) * 1000 if values else float("nan")
    checked, wrong, examples = verbose_check(text, blocked)
    if wrong:
        check = f"WRONG: {wrong:,} of {checked:,} ({'; '.join(examples)})"
    else:
        check = f"ok ({checked:,} checked)"
    return run, check


def run_reload(
    ps: Processes,
    tmp: Path,
    big: BigList,
    data: Data,
    nsd: Proc,
    duration: float,
    server_cpu: int | None,
    load_cpu: int | None,
    rng: random.Random,
) -> ReloadResult:
    """parafoudre at a fixed rate, first as is, then while its list is replaced RELOAD_SWAPS
    times; each reload's duration comes from the server's own log line."""
    res = ReloadResult(big.size)
    name = "parafoudre-reload"
    state = tmp / f"{name}-state"
    state.mkdir()
    target = state / "blocklist.pfb"
    shutil.copy(big.file("parafoudre"), target)
    # The new lists, as successive feed updates: each drops RELOAD_DELTA names (never one the
    # load asks) and adds as many. They are compiled beforehand into the same directory, so no
    # compile competes with the server for CPU during the load; during it, each is renamed over
    # the configured file, which is what the server sees of `parafoudre feeds update`.
    asked = {n.removeprefix("www.") for n in big.blocked_names}
    staged = []
    t0 = time.monotonic()
    for k in range(RELOAD_SWAPS):
        lo = (k * RELOAD_DELTA) % max(1, big.size - RELOAD_DELTA)
        names = big.names[:lo] + [n for n in big.names[lo : lo + RELOAD_DELTA] if n in asked]
        names += big.names[lo + RELOAD_DELTA :]
        names += [f"u{i}.update-{k}.test" for i in range(RELOAD_DELTA)]
        path = state / f".blocklist.pfb.update-{k}"
        log(f"compiling new list {k + 1}/{RELOAD_SWAPS} ({len(names):,} names)")
        res.expected.append(compile_names(names, path))
        staged.append(path)
    res.compile_s = (time.monotonic() - t0) / RELOAD_SWAPS
    # Enough time for every list to be seen by the server's poll, one after the other.
    res.load_s = max(duration, 1.0 + RELOAD_SWAPS * (RELOAD_POLL + 0.7) + RELOAD_POLL + 2.0)
    qfile = tmp / "q-reload.txt"
    reload_file(qfile, data, big, int(LATENCY_QPS * 2), rng)
    blocked = set(big.blocked_names)
    proc = launch_parafoudre(ps, tmp, name, state, nsd, server_cpu, level="info")
    try:
        wait_ready(proc, data.cached_names[0], timeout=BIG_READY_TIMEOUT)
        problems = check_cases(proc, big.cases(data))
        warm_problem = big_warm(proc, big, data, load_cpu, tmp)
        if warm_problem:
            problems.append(f"warm-up: {warm_problem}")
        if problems:
            raise BenchError("wrong answers before the load: " + "; ".join(problems))
        if reload_lines(proc):
            res.notes.append("the server logged reloads before the load")
        log(f"reload: {res.load_s:g} s at {LATENCY_QPS:,} q/s without reloads")
        save = tmp / f"dnsperf-{name}-base.txt"
        res.base, res.base_check = reload_load(
            proc, qfile, res.load_s, load_cpu, save, blocked, [], target, res
        )
        time.sleep(SETTLE)
        res.rss_before = memory_detail(proc.pid)["VmRSS"]
        log(f"reload: {res.load_s:g} s at {LATENCY_QPS:,} q/s, {RELOAD_SWAPS} lists renamed in")
        save = tmp / f"dnsperf-{name}-swaps.txt"
        res.load, res.load_check = reload_load(
            proc, qfile, res.load_s, load_cpu, save, blocked, staged, target, res
        )
        time.sleep(SETTLE)
        res.rss_after = memory_detail(proc.pid)["VmRSS"]
        if not proc.alive():
            raise BenchError(f"{name} exited with code {proc.popen.returncode}")
    except (BenchError, OSError) as exc:
        res.error = str(exc).splitlines()[0]
    finally:
        ps.stop(proc)
    lines = reload_lines(proc)
    res.durations_ms = [ms for ms, _ in lines]
    res.entries = [n for _, n in lines]
    failed = len(re.findall(r"reload failed", proc.stderr_text()))
    if failed:
        res.notes.append(f"{failed} reloads failed (server log)")
    if res.entries and res.entries != res.expected[: len(res.entries)]:
        res.notes.append(
            f"entries logged {res.entries}, expected {res.expected[: len(res.entries)]}"
        )
    for r in (res.base, res.load):
        if r is not None:
            p99 = f"{r.p99_ms:.3f}" if r.p99_ms is not None else "–"
            log(f"  {r.sent:,} sent, {r.lost:,} lost, p99 {p99} ms")
    if res.durations_ms:
        log(f"  reloads: {', '.join(f'{ms:.1f}' for ms in res.durations_ms)} ms")
    return res


# --- report --------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    vals = [v for v in values if v == v]  # drop NaN
    return statistics.median(vals) if vals else float("nan")


@dataclass
class Row:
    server: str
    qps: float
    avg_ms: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_us: float
    cpu_pct: float
    rss_mb: float
    lost: int
    sent: int
    check: str
    notes: list[str]


def summarise(runs: list[Run], workload: str) -> Row:
    nan = float("nan")
    notes = [f"round {i + 1}: {r.error}" for i, r in enumerate(runs) if r.error]
    good = [r for r in runs if not r.error]
    if not good:
        return Row(runs[0].server, nan, nan, None, None, nan, nan, nan, 0, 0, "failed", notes)
    rcodes: dict[str, int] = {}
    for r in good:
        for k, v in r.rcodes.items():
            rcodes[k] = rcodes.get(k, 0) + v
    total = sum(rcodes.values())
    expected = EXPECTED[workload]
    bad = []
    for k in sorted(set(rcodes) | set(expected)):
        v = rcodes.get(k, 0)
        share = v / total if total else 0.0
        want = expected.get(k, 0.0)
        # The mixed files hold exactly 7.5 % NXDOMAIN names in every 100 lines.
        tolerance = 0.005 if 0 < want < 1 else 0.0
        if abs(share - want) > tolerance + 1e-12:
            bad.append(f"{k} {v:,} ({share:.2%}, expected {want:.1%})")
    check = "ok" if not bad else "WRONG: " + ", ".join(bad)
    if any(r.eof for r in good):
        notes.append("the read-once query file ended before the time limit (shorter run)")
    procs = max(r.procs for r in good)
    if procs > 1:
        pss = median([r.pss_mb for r in good])
        notes.append(f"{procs} processes: RSS is their sum; PSS (shared pages split) {pss:.1f} MB")
    late = sum(r.warnings for r in good)
    if late:
        notes.append(f"{late} answers arrived after the {TIMEOUT} s timeout")

    def opt(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return median(known) if known else None

    return Row(
        server=runs[0].server,
        qps=median([r.qps for r in good]),
        avg_ms=median([r.avg_ms for r in good]),
        p50_ms=opt([r.p50_ms for r in good]),
        p99_ms=opt([r.p99_ms for r in good]),
        cpu_us=median([r.cpu_us for r in good]),
        cpu_pct=median([r.cpu_pct for r in good]),
        rss_mb=median([r.rss_mb for r in good]),
        lost=sum(r.lost for r in good),
        sent=sum(r.sent for r in good),
        check=check,
        notes=notes,
    )


def fmt(v: float | None, digits: int = 1, thousands: bool = False) -> str:
    if v is None or v != v:
        return "–"
    return f"{v:,.{digits}f}" if thousands else f"{v:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or a != a or b != b or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def table(rows: list[Row]) -> list[str]:
    out = [
        "| server | q/s | avg ms | p50 ms | p99 ms | CPU µs/query | server CPU % | RSS MB "
        "| lost / sent | answers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.server} | {fmt(r.qps, 0, True)} | {fmt(r.avg_ms, 3)} | {fmt(r.p50_ms, 3)} "
            f"| {fmt(r.p99_ms, 3)} | {fmt(r.cpu_us, 2)} | {fmt(r.cpu_pct, 0)} "
            f"| {fmt(r.rss_mb, 1)} | {r.lost:,} / {r.sent:,} | {r.check} |"
        )
    by = {r.server: r for r in rows}
    p = by.get("parafoudre")
    for other in ("dnsmasq", "unbound"):
        o = by.get(other)
        if p is None or o is None:
            continue
        out.append(
            f"| **parafoudre / {other}** | {ratio(p.qps, o.qps)} | {ratio(p.avg_ms, o.avg_ms)} "
            f"| {ratio(p.p50_ms, o.p50_ms)} | {ratio(p.p99_ms, o.p99_ms)} "
            f"| **{ratio(p.cpu_us, o.cpu_us)}** | | {ratio(p.rss_mb, o.rss_mb)} | | |"
        )
    return out


def targets(
    rows: dict[str, dict[str, Row]],
    big_rows: Sequence[BigRow] = (),
    reload_res: ReloadResult | None = None,
    floor: Row | None = None,
    logging_dm: Row | None = None,
) -> list[str]:
    """The issue's targets, met or not, from this run."""
    out = ["| target | this run | met |", "|---|---|---|"]

    def cpu_ratio(w: str) -> float | None:
        p = rows.get(w, {}).get("parafoudre")
        d = rows.get(w, {}).get("dnsmasq")
        if p is None or d is None or not d.cpu_us or d.cpu_us != d.cpu_us:
            return None
        return p.cpu_us / d.cpu_us

    for w, limit, what in (
        ("cached", 1.0, "server CPU per cached answer"),
        ("blocked", 1.0, "server CPU per blocked answer"),
        ("blocked-distinct", 1.0, "server CPU per first blocked answer (issue 19)"),
        ("mixed", 1.3, "server CPU per query, mixed"),
    ):
        r = cpu_ratio(w)
        if r is not None:
            p, d = rows[w]["parafoudre"], rows[w]["dnsmasq"]
            context = ""
            if w == "blocked-distinct" and logging_dm is not None and logging_dm.cpu_us:
                context = (
                    f"; {p.cpu_us / logging_dm.cpu_us:.2f}× dnsmasq logging every query "
                    f"({logging_dm.cpu_us:.1f} µs)"
                )
            out.append(
                f"| {what} ≤ {limit:.1f}× dnsmasq | {r:.2f}× ({p.cpu_us:.1f} µs vs "
                f"{d.cpu_us:.1f} µs{context}) | {'yes' if r <= limit else 'no'} |"
            )
    misses = rows.get("misses", {})
    pm, um = misses.get("parafoudre"), misses.get("unbound")
    if pm is not None and um is not None and um.cpu_us and pm.cpu_us:
        r = pm.cpu_us / um.cpu_us
        out.append(
            f"| server CPU per miss ≤ 1.5× unbound (issue 19) | {r:.2f}× ({pm.cpu_us:.1f} µs "
            f"vs {um.cpu_us:.1f} µs) | {'yes' if r <= 1.5 else 'no'} |"
        )
    lat = rows.get("latency", {})
    pl = lat.get("parafoudre")
    if pl is not None and pl.p99_ms is not None:
        others = ", ".join(
            f"{s} {r.p99_ms:.3f} ms" for s, r in lat.items() if s != "parafoudre" and r.p99_ms
        )
        if floor is not None and floor.p99_ms is not None:
            others += f", a do-nothing Python responder {floor.p99_ms:.3f} ms"
        context = f" (same machine, same run: {others})" if others else ""
        out.append(
            f"| p99 latency at {LATENCY_QPS:,} q/s ≤ 0.3 ms | {pl.p99_ms:.3f} ms{context} "
            f"| {'yes' if pl.p99_ms <= 0.3 else 'no'} |"
        )
    lost = [(w, r) for w, by in rows.items() for s, r in by.items() if s == "parafoudre"]
    if lost:
        total = sum(r.lost for _, r in lost)
        detail = ", ".join(f"{w} {r.lost:,}/{r.sent:,}" for w, r in lost)
        met = "yes" if total == 0 else "no"
        out.append(f"| zero queries lost (parafoudre) | {detail} | {met} |")
    big = {r.server: r for r in big_rows if r.mem}
    if "parafoudre" in big and "dnsmasq" in big:
        p_mb, d_mb = big["parafoudre"].mem["VmRSS"], big["dnsmasq"].mem["VmRSS"]
        out.append(
            f"| RSS with the {big_rows[0].size:,}-name list ≤ 1.0× dnsmasq | {p_mb / d_mb:.2f}× "
            f"({p_mb:.1f} MB vs {d_mb:.1f} MB) | {'yes' if p_mb <= d_mb else 'no'} |"
        )
    res = reload_res
    if res is not None and res.load is not None:
        if res.durations_ms:
            worst = max(res.durations_ms)
            met = (
                "yes" if worst <= RELOAD_TARGET_MS and len(res.durations_ms) >= res.swaps else "no"
            )
            out.append(
                f"| list reload ≤ {RELOAD_TARGET_MS:g} ms ({res.size:,} names) | longest "
                f"{worst:.1f} ms of {len(res.durations_ms)} (median "
                f"{statistics.median(res.durations_ms):.1f} ms) | {met} |"
            )
        else:
            out.append(f"| list reload ≤ {RELOAD_TARGET_MS:g} ms | no reload logged | no |")
        run = res.load
        met = "yes" if run.lost == 0 and res.durations_ms else "no"
        out.append(
            f"| no query dropped during reloads | {run.lost:,} lost of {run.sent:,} during "
            f"{len(res.durations_ms)} reloads | {met} |"
        )
    return out


def logging_note(parafoudre: Row | None, logging_dm: Row) -> str:
    """The blocked-distinct reference line: what dnsmasq costs once it keeps a record too."""
    if logging_dm.check != "ok" or logging_dm.cpu_us != logging_dm.cpu_us:
        why = "; ".join(logging_dm.notes) or logging_dm.check
        return f"- same load, same run, dnsmasq logging every query: no figure ({why})"
    ratio_text = ""
    if parafoudre is not None and parafoudre.cpu_us == parafoudre.cpu_us:
        ratio_text = f"; parafoudre / it: **{parafoudre.cpu_us / logging_dm.cpu_us:.2f}×**"
    return (
        "- same load, same run, on dnsmasq writing down every query as parafoudre writes down "
        "every block (`--log-queries` to a file, `--log-async=100`; every query answered was "
        f"found in its log): {logging_dm.qps:,.0f} q/s, {logging_dm.cpu_us:.2f} µs CPU/query"
        f"{ratio_text}"
    )


def big_section(big_rows: Sequence[BigRow]) -> list[str]:
    size = big_rows[0].size
    out = [
        f"## biglist: each server alone with a {size:,}-name list",
        "",
        f"Every server started on its own (the others stopped) with the same {size:,} names "
        "(parafoudre: the compiled artifact, as `parafoudre feeds update` writes it; dnsmasq: "
        "`address=/name/` lines; unbound: `local-zone` lines), then asked every one of "
        f"{CACHED_NAMES:,} zone names and {BIG_WARM_BLOCKED:,} listed names (half as "
        "www.<listed name>) twice, each answer checked (listed: NXDOMAIN; others: NOERROR). "
        "Ready: seconds from the start of the process to its first right answer. Memory: "
        f"{SETTLE:g} s after the warm-up; file-backed pages are the mapped files' pages in "
        "memory (parafoudre's artifact is one, shared with the page cache).",
        "",
        "| server | ready s | RSS MB | PSS MB | anonymous MB | file-backed MB | answers |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in big_rows:
        m = r.mem
        if r.error:
            out.append(f"| {r.server} | | | | | | failed: {r.error} |")
            continue
        out.append(
            f"| {r.server} | {fmt(r.ready_s, 1)} | {fmt(m['VmRSS'])} | {fmt(m['Pss'])} "
            f"| {fmt(m['RssAnon'])} | {fmt(m['RssFile'] + m['RssShmem'])} "
            f"| {r.check} ({r.queries:,} queries) |"
        )
    by = {r.server: r for r in big_rows if r.mem}
    p = by.get("parafoudre")
    for other in ("dnsmasq", "unbound"):
        o = by.get(other)
        if p is None or o is None:
            continue
        pm, om = p.mem, o.mem
        out.append(
            f"| **parafoudre / {other}** | {ratio(p.ready_s, o.ready_s)} "
            f"| **{ratio(pm['VmRSS'], om['VmRSS'])}** | {ratio(pm['Pss'], om['Pss'])} "
            f"| {ratio(pm['RssAnon'], om['RssAnon'])} | | |"
        )
    return out


def reload_section(res: ReloadResult) -> list[str]:
    if res.skipped:
        return ["## reload: not run", "", f"Skipped: {res.skipped}."]
    out = [
        f"## reload: parafoudre at {LATENCY_QPS:,} q/s while its {res.size:,}-name list is "
        f"replaced {RELOAD_SWAPS} times",
        "",
        f"The load: {100 - RELOAD_BLOCKED_SHARE} % cached names, {RELOAD_BLOCKED_SHARE} % "
        f"listed names (warmed), {res.load_s:g} s at a fixed {LATENCY_QPS:,} q/s, every "
        "query's latency and answer recorded (dnsperf -v), run twice on the same instance: as "
        f"is, then while {RELOAD_SWAPS} new lists (each {RELOAD_DELTA:,} names dropped, "
        f"{RELOAD_DELTA:,} added, as a feed update; compiled beforehand in the same directory, "
        f"{fmt(res.compile_s, 1)} s each) are renamed over the configured artifact one after "
        f"the other, as `parafoudre feeds update` does; the server notices by its {RELOAD_POLL:g} "
        "s poll. Reload time: the server's own log line (`lists reloaded in X ms`), from the "
        "start of its reload to the swap. Every answer is checked: a listed name must be "
        "NXDOMAIN, another NOERROR, whichever list is in place.",
        "",
        "| load | reloads | q/s | p50 ms | p99 ms | max ms | lost / sent | answers |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for what, r, check, n in (
        ("without reloads", res.base, res.base_check, 0),
        ("with reloads", res.load, res.load_check, len(res.durations_ms)),
    ):
        if r is None:
            out.append(f"| {what} | | | | | | | not run |")
            continue
        out.append(
            f"| {what} | {n} | {fmt(r.qps, 0, True)} | {fmt(r.p50_ms, 3)} | {fmt(r.p99_ms, 3)} "
            f"| {fmt(r.max_ms, 1)} | {r.lost:,} / {r.sent:,} | {check} |"
        )
    out.append("")
    d = res.durations_ms
    if d:
        out.append(
            f"- reload durations (server log): min {min(d):.1f} / median "
            f"{statistics.median(d):.1f} / max {max(d):.1f} ms "
            f"({', '.join(f'{x:.1f}' for x in d)})"
        )
    else:
        out.append("- no reload logged")
    if res.seen_s:
        out.append(
            f"- from the rename to the log line: {min(res.seen_s):.2f} to "
            f"{max(res.seen_s):.2f} s (the server looks at the file every {RELOAD_POLL:g} s)"
        )
    if res.entries:
        out.append(
            f"- entries after each reload (server log): {', '.join(f'{n:,}' for n in res.entries)}"
        )
    out.append(f"- RSS: {fmt(res.rss_before)} MB before the reloads, {fmt(res.rss_after)} MB after")
    out += [f"- {n}" for n in res.notes]
    if res.error:
        out.append(f"- error: {res.error}")
    return out


def versions() -> dict[str, str]:
    v: dict[str, str] = {}
    sys.path.insert(0, str(REPO))
    try:
        import resolver

        v["parafoudre"] = resolver.__version__
    except ImportError:
        v["parafoudre"] = "unknown"
    finally:
        sys.path.remove(str(REPO))
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
        if rev:
            v["parafoudre"] += f" (git {rev}{', working tree modified' if dirty else ''})"
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        v["uvloop"] = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        v["uvloop"] = "not installed (asyncio loop)"
    v["Python"] = platform.python_version()
    v["dnsmasq"] = first_line(["dnsmasq", "-v"], r"Dnsmasq version (\S+)")
    v["unbound"] = first_line(["unbound", "-V"], r"Version (\S+)")
    v["NSD"] = first_line(["nsd", "-v"], r"NSD version (\S+)")
    v["dnsperf"] = first_line(["dnsperf", "-h"], r"Version (\S+)")
    v["Linux"] = platform.release()
    return v


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, help="seconds per workload (default 10; 2 --quick)")
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, of: %(default)s")
    p.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated, of: %(default)s"
    )
    p.add_argument("--rounds", type=int, default=1, help="runs of each load; medians reported")
    p.add_argument(
        "--rate",
        type=int,
        default=0,
        help="q/s of the cached, blocked and mixed loads (default 0: as fast as dnsperf can); "
        "a fixed rate compares CPU per query at equal load",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: 2 s loads, {BLOCKLIST_QUICK:,}-name blocklist, results not written "
        "to bench/results.md unless --output says so",
    )
    p.add_argument("--output", type=Path, help=f"Markdown results file (default {DEFAULT_OUTPUT})")
    p.add_argument("--strict", action="store_true", help="also fail when a query is lost")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--seed", type=int, default=6, help="random seed of the generated names")
    args = p.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r} (choose among {', '.join(SERVERS)})")
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r} (choose among {', '.join(WORKLOADS)})")
    if not args.servers or not args.workloads:
        p.error("give at least one server and one workload")
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    if not 0.5 <= args.duration <= 600:
        p.error("--duration must be between 0.5 and 600 seconds")
    if not 1 <= args.rounds <= 20:
        p.error("--rounds must be between 1 and 20")
    if args.rate < 0:
        p.error("--rate must be 0 (full speed) or a number of queries per second")
    if args.output is None and not args.quick:
        args.output = DEFAULT_OUTPUT
    return args


def check_tools(servers: Sequence[str]) -> None:
    need = {"dnsperf": "dnsperf", "nsd": "nsd", "taskset": "util-linux"}
    need.update({"dnsmasq": "dnsmasq-base", "unbound": "unbound"})
    wanted = ["dnsperf", "nsd", "taskset"] + [s for s in servers if s != "parafoudre"]
    missing = [t for t in wanted if shutil.which(t) is None]
    if missing:
        pkgs = " ".join(sorted({need[t] for t in missing}))
        raise MissingTools(f"missing {', '.join(missing)}: apt-get install -y {pkgs}")
    if "parafoudre" in servers:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            log("warning: uvloop is not importable: parafoudre runs on asyncio's slower loop")


def cores() -> tuple[int | None, int | None, str]:
    """(server CPU, load CPU, description): different cores where there are two."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2:
        return (
            allowed[0],
            allowed[1],
            (
                f"server under test pinned to CPU {allowed[0]}; dnsperf and NSD pinned to CPU "
                f"{allowed[1]}"
            ),
        )
    return None, None, "one CPU: nothing pinned, server and load generator share it"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    try:
        check_tools(args.servers)
    except MissingTools as exc:
        log(f"error: {exc}")
        return 3
    server_cpu, load_cpu, pinning = cores()
    rng = random.Random(args.seed)
    blocklist_size = BLOCKLIST_QUICK if args.quick else BLOCKLIST_FULL
    tmp = Path(tempfile.mkdtemp(prefix="parafoudre-bench-"))
    ps = Processes()
    failures: list[str] = []
    server_notes: dict[str, list[str]] = {}
    main_workloads = [w for w in args.workloads if w in MAIN_WORKLOADS]
    results: dict[str, dict[str, list[Run]]] = {w: {} for w in main_workloads}
    floor_runs: list[Run] = []  # the do-nothing Python responder, latency workload only
    logging_runs: list[Run] = []  # dnsmasq logging every query, blocked-distinct only
    big_rows: list[BigRow] = []
    reload_res: ReloadResult | None = None
    load_avg = os.getloadavg()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    become_subreaper()
    # Ctrl-C, kill and a closed terminal all end the run the same way: every process stopped.
    # (SIGINT explicitly: a shell starting us in the background would have it ignored.)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        log(f"temporary directory {tmp}; generating zone, {blocklist_size:,}-name blocklist")
        data = generate(tmp, blocklist_size, rng)
        nsd = start_nsd(ps, tmp, data, load_cpu)
        procs: dict[str, Proc] = {}
        if main_workloads:
            for s in args.servers:
                procs[s] = STARTERS[s](ps, tmp, data, nsd, server_cpu)
            for s, proc in list(procs.items()):
                try:
                    took = wait_ready(proc, data.cached_names[0])
                except BenchError as exc:
                    failures.append(f"{s}: {exc}")
                    log(f"{s}: {exc}")
                    del procs[s]
                    continue
                rss, pss, n = memory_mb(proc.pid)
                procs_note = f" in {n} processes (PSS {pss:.1f} MB)" if n > 1 else ""
                note = (
                    f"ready {took:.1f} s after start, RSS {rss:.1f} MB{procs_note} before any load"
                )
                log(f"{s}: {note}")
                server_notes.setdefault(s, []).append(note)
                problems = check_answers(proc, data)
                if problems:
                    failures += [f"{s}: wrong answer: {p}" for p in problems]
                    log(f"{s}: wrong answers: {'; '.join(problems)}")
                if not proc.alive():
                    err = proc.stderr_text().strip()[-1500:]
                    failures.append(f"{s}: exited with code {proc.popen.returncode}: {err}")
                    log(f"{s}: exited with code {proc.popen.returncode}: {err}")
                    del procs[s]
                    continue
                warm(proc, data, load_cpu)
            # What each server burns doing nothing: part of every CPU µs/query figure, largest
            # share at low rates.
            idle_s = 1.0 if args.quick else 3.0
            before = {s: cpu_sample(p.pid) for s, p in procs.items()}
            time.sleep(idle_s)
            for s, p in procs.items():
                idle = cpu_used(before[s], cpu_sample(p.pid)) / idle_s * 100
                server_notes.setdefault(s, []).append(
                    f"idle (no query for {idle_s:g} s): {idle:.2f} % CPU"
                )
            if not procs:
                raise BenchError("no server to measure")

            order = list(procs)
            floor = start_floor(ps, tmp, server_cpu) if "latency" in main_workloads else None
            logging_dm = None
            if "blocked-distinct" in main_workloads and "dnsmasq" in args.servers:
                logging_dm = start_logging_dnsmasq(ps, tmp, data, nsd, server_cpu)
            for rnd in range(args.rounds):
                for w in main_workloads:
                    if w == "latency":
                        servers = {s: procs[s] for s in order}
                        if floor is not None and floor.alive():
                            servers[floor.name] = floor
                        log(
                            f"round {rnd + 1}/{args.rounds}: latency on {', '.join(servers)}, "
                            f"{LATENCY_SLICES} turns of {args.duration / LATENCY_SLICES:g} s"
                        )
                        runs = measure_latency(servers, data, tmp, rnd, args, load_cpu, rng)
                        if floor is not None and floor.name in runs:
                            # The same load on a server that does no resolver work at all:
                            # what this machine's wake-ups cost any Python server (floor.py).
                            run = runs.pop(floor.name)
                            if not run.error:
                                floor_runs.append(run)
                                log(f"  python floor: p99 {run.p99_ms:.3f} ms")
                        for run in runs.values():
                            keep(run, results, failures)
                        continue
                    if w in ("cached", "blocked"):
                        qfile = data.cached if w == "cached" else data.blocked
                    elif w in ("blocked-distinct", "misses"):
                        qfile = tmp / f"q-{w}-{rnd}.txt"
                        lines = int((args.rate or MIXED_MAX_QPS) * args.duration) + 1000
                        log(f"writing {qfile.name} ({lines:,} lines)")
                        # Tags of their own: a miss of the mixed load (m<round>x) must not
                        # have been asked before by this one.
                        tag = "bd" if w == "blocked-distinct" else "fm"
                        first_answers_file(qfile, data, w, lines, f"{tag}{rnd}x")
                    else:
                        qfile = tmp / f"q-{w}-{rnd}.txt"
                        rate = args.rate or MIXED_MAX_QPS
                        rate *= 1.2 if rate < MIXED_MAX_QPS else 1.0  # a fixed rate: a margin
                        lines = int(rate * args.duration) + 1000
                        log(f"writing {qfile.name} ({lines:,} lines)")
                        mixed_file(qfile, data, lines, f"{w[0]}{rnd}x", rng)
                    for s in order:
                        log(f"round {rnd + 1}/{args.rounds}: {w} on {s} ({args.duration:g} s)")
                        save = tmp / f"dnsperf-{s}-{w}-{rnd}.txt"
                        run = measure(procs[s], w, qfile, args.duration, load_cpu, save, args.rate)
                        keep(run, results, failures)
                    if w == "blocked-distinct" and logging_dm is not None and logging_dm.alive():
                        logging_runs.append(
                            measure_logging(logging_dm, qfile, tmp, rnd, args, load_cpu)
                        )
                    if w in ONCE:
                        qfile.unlink()
                order = order[1:] + order[:1]  # who goes first changes from round to round

            # Stop the servers now, so their own end-of-run reports can be read.
            if "dnsmasq" in procs and procs["dnsmasq"].alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(procs["dnsmasq"].pid, signal.SIGUSR1)  # statistics to its log
                time.sleep(0.5)
            for s, proc in procs.items():
                ps.stop(proc)
                server_notes.setdefault(s, []).extend(server_report(proc))

        # Instances of their own, started and stopped here, the others stopped already: the
        # figures above are those of a run without these two workloads.
        big_rng = random.Random(f"{args.seed}-big")
        big_lists: dict[int, BigList] = {}

        def big_list(size: int) -> BigList:
            if size not in big_lists:
                log(f"generating a {size:,}-name blocklist")
                big_lists[size] = BigList.make(tmp, size, big_rng)
            return big_lists[size]

        if "biglist" in args.workloads:
            size = BIGLIST_QUICK if args.quick else BIGLIST_FULL
            log(f"biglist: every server alone with the {size:,}-name list")
            big = big_list(size)
            big_rows = run_biglist(ps, tmp, big, data, nsd, args.servers, server_cpu, load_cpu)
            for r in big_rows:
                if r.error:
                    failures.append(f"{r.server} biglist: {r.error}")
                    log(f"  {r.server}: {r.error}")
                elif r.check != "ok":
                    failures.append(f"{r.server} biglist: {r.check}")
        if "reload" in args.workloads:
            if "parafoudre" not in args.servers:
                why = "it measures parafoudre, which is not in --servers"
                log(f"reload: skipped ({why})")
                reload_res = ReloadResult(0, skipped=why)
            else:
                size = RELOAD_LIST_QUICK if args.quick else RELOAD_LIST_FULL
                log(f"reload: parafoudre with the {size:,}-name list")
                reload_res = run_reload(
                    ps,
                    tmp,
                    big_list(size),
                    data,
                    nsd,
                    args.duration,
                    server_cpu,
                    load_cpu,
                    big_rng,
                )
                if reload_res.error:
                    failures.append(f"parafoudre reload: {reload_res.error}")
                for check in (reload_res.base_check, reload_res.load_check):
                    if check.startswith("WRONG"):
                        failures.append(f"parafoudre reload: {check}")
                if reload_res.load is not None and len(reload_res.durations_ms) < RELOAD_SWAPS:
                    failures.append(
                        f"parafoudre reload: {len(reload_res.durations_ms)} reloads logged, "
                        f"{RELOAD_SWAPS} expected"
                    )
                failures += [f"parafoudre reload: {n}" for n in reload_res.notes]
    except KeyboardInterrupt:
        log("interrupted: stopping every process")
        return 130
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        ps.stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = {w: {s: summarise(runs, w) for s, runs in by.items()} for w, by in results.items() if by}
    text = report(
        args,
        rows,
        server_notes,
        failures,
        started,
        pinning,
        blocklist_size,
        load_avg,
        big_rows,
        reload_res,
        summarise(floor_runs, "latency") if floor_runs else None,
        summarise(logging_runs, "blocked-distinct") if logging_runs else None,
    )
    print(text)
    if args.output:
        args.output.write_text(text)
        log(f"results written to {args.output}")
    bad = failures + [
        f"{s} {w}: {r.check}" for w, by in rows.items() for s, r in by.items() if r.check != "ok"
    ]
    if args.strict:
        bad += [
            f"{s} {w}: {r.lost:,} queries lost"
            for w, by in rows.items()
            for s, r in by.items()
            if r.lost
        ]
        if reload_res is not None:
            bad += [
                f"parafoudre reload ({what}): {r.lost:,} queries lost"
                for what, r in (("without reloads", reload_res.base), ("reloads", reload_res.load))
                if r is not None and r.lost
            ]
    for b in bad:
        log(f"FAILED: {b}")
    return 1 if bad else 0


def server_report(proc: Proc) -> list[str]:
    """What the server itself said: its stderr lines, and its own counters where it has them."""
    notes: list[str] = []
    text = proc.stderr_text()
    if proc.name == "parafoudre":
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines:
            notes.append(f"stderr ({len(lines)} lines): " + " / ".join(lines[:5]))
        else:
            notes.append("stderr: empty (logging level warning)")
        db = proc.extra.get("blocklog")
        if db and db.exists():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    # Identical blocks within a write window share a row: count, rows.
                    written, rows = con.execute(
                        "SELECT coalesce(sum(count), 0), count(*) FROM blocks"
                    ).fetchone()
                    dropped = dict(con.execute("SELECT name, value FROM counters").fetchall())
                finally:
                    con.close()
                notes.append(
                    f"block log: {written:,} blocks written (in {rows:,} rows), "
                    f"{dropped.get('queue_dropped', 0):,} "
                    f"dropped from its queue, {dropped.get('write_failed', 0):,} failed writes"
                )
            except sqlite3.Error as exc:
                notes.append(f"block log unreadable: {exc}")
    elif proc.name == "dnsmasq":
        for pat in (r"queries forwarded \d+, queries answered locally \d+", r"cache size .*"):
            m = re.search(pat, text)
            if m:
                notes.append(m.group(0))
    elif proc.name == "unbound":
        m = re.search(r"server stats for thread 0: (\d+ queries, \d+ answers from cache, "
                      r"\d+ recursions)", text)  # fmt: skip
        if m:
            notes.append(m.group(1))
    if proc.popen.returncode not in (0, None, -signal.SIGTERM):
        notes.append(f"exit code {proc.popen.returncode}")
    return notes


def report(
    args: argparse.Namespace,
    rows: dict[str, dict[str, Row]],
    server_notes: dict[str, list[str]],
    failures: list[str],
    started: datetime.datetime,
    pinning: str,
    blocklist_size: int,
    load_avg: tuple[float, float, float],
    big_rows: Sequence[BigRow] = (),
    reload_res: ReloadResult | None = None,
    floor: Row | None = None,
    logging_dm: Row | None = None,
) -> str:
    v = versions()
    cmd = ".venv/bin/python bench/run_bench.py " + " ".join(sys.argv[1:])
    out = [
        "# Parafoudre benchmark: parafoudre, dnsmasq, unbound in the same run",
        "",
        f"Written by `bench/run_bench.py` (see `bench/README.md`). Command: `{cmd.strip()}`",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores; {pinning}; load average before the run "
        f"{load_avg[0]:.2f} (other work on the machine makes figures noisy: compare ratios)",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Setup: every server forwards to NSD on 127.0.0.1 (zone {ZONE}, {ZONE_HOSTS:,} A "
        f"records) and blocks the same {blocklist_size:,} names (NXDOMAIN); dnsperf "
        f"{CLIENTS} clients, {TIMEOUT} s timeout, {args.duration:g} s per load, {args.rounds} "
        f"round(s) (medians; lost and sent summed); caches: parafoudre {PARAFOUDRE_CACHE:,}, "
        f"dnsmasq {DNSMASQ_CACHE:,} names, unbound 16 MB msg + 32 MB rrset; parafoudre with one "
        "worker process, unbound with one thread; parafoudre's per-client limits (rate limit, "
        "exfiltration query-rate signal) on but out of reach, since one client stands for a "
        "whole commune",
        "",
        "q/s: answers per second. CPU µs/query: server CPU time (user + system, all threads and "
        f"processes) during the load and the {SETTLE:g} s after it, divided by the queries "
        "answered. Server CPU %: the same time over the load's duration; near 100 % the server "
        "set the pace, well below it dnsperf did (its core is the limit), so compare q/s only "
        "between servers near 100 %. RSS: resident memory after the load. p50/p99: latency "
        "workload only, from every query's latency (a lost query counts as the timeout).",
    ]
    speed = f"at {args.rate:,} q/s" if args.rate else "as fast as dnsperf can"
    for w in args.workloads:
        if w not in rows:
            continue
        desc = DESCRIPTION[w].format(n=CACHED_NAMES, qps=LATENCY_QPS, speed=speed)
        out += ["", f"## {w}: {desc}", ""]
        ordered = [rows[w][s] for s in SERVERS if s in rows[w]]
        out += table(ordered)
        notes = [f"- {r.server}: {n}" for r in ordered for n in r.notes]
        if w == "latency" and floor is not None:
            notes.append(
                "- same load, same run, on a do-nothing Python responder (bench/floor.py: "
                "uvloop, recvfrom/sendto, no resolver work): "
                f"avg {floor.avg_ms:.3f} ms, p50 {floor.p50_ms:.3f} ms, p99 {floor.p99_ms:.3f} ms"
            )
        if w == "blocked-distinct" and logging_dm is not None:
            notes.append(logging_note(rows[w].get("parafoudre"), logging_dm))
        if notes:
            out += ["", *notes]
    if big_rows:
        out += ["", *big_section(big_rows)]
    if reload_res is not None:
        out += ["", *reload_section(reload_res)]
    t = targets(rows, big_rows, reload_res, floor, logging_dm)
    if len(t) > 2:
        out += ["", "## Targets (issue 6)", "", *t]
    if server_notes:
        out += ["", "## What the servers said", ""]
        for s in SERVERS:
            for n in server_notes.get(s, []):
                out.append(f"- {s}: {n}")
    if failures:
        out += ["", "## Problems", ""] + [f"- {f}" for f in failures]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"error: {exc}")
        sys.exit(1)
