"""Where the floor is: a do-nothing Python DNS responder against dnsmasq, same machine, same run.

    .venv/bin/python bench/floor.py --duration 5

The responder (uvloop, one reader callback, recvfrom/sendto, the answer to each distinct query
kept) does none of a resolver's work, so its figures are what any Python server on uvloop pays
on this machine for the event loop, the system calls and the wake-ups. Both servers are pinned
to the first CPU and dnsperf to the second, as in run_bench.py; all traffic is on loopback.
Prints, for each: CPU µs per answer at full speed, and average, p50 and p99 latency at a fixed
5,000 q/s. Needs dnsperf, dnsmasq and taskset.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESPONDER = r"""
import socket, sys, uvloop
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.setblocking(False)
known = {}
TAIL = bytes.fromhex("c00c000100010000003c0004c0000201")  # A 192.0.2.1, TTL 60
def readable():
    for _ in range(64):
        try:
            data, addr = sock.recvfrom(65535)
        except BlockingIOError:
            return
        answer = known.get(data[2:])
        if answer is None:
            answer = b"\x81\x80" + data[4:6] + b"\x00\x01\x00\x00\x00\x00" + data[12:] + TAIL
            known[data[2:]] = answer
        sock.sendto(data[:2] + answer, addr)
loop = uvloop.new_event_loop()
loop.add_reader(sock.fileno(), readable)
loop.run_forever()
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf(port: int, qfile: Path, seconds: float, qps: int | None) -> str:
    cmd = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile)]
    cmd += ["-l", str(seconds), "-c", "10", "-t", "2"]
    if qps:
        cmd += ["-Q", str(qps), "-v"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return out.stdout


def completed(text: str) -> int:
    m = re.search(r"Queries completed:\s+(\d+)", text)
    return int(m.group(1)) if m else 0


def latencies_ms(text: str) -> list[float]:
    # dnsperf -v: "> NOERROR name A 0.000123" per answered query
    return [float(x) * 1000 for x in re.findall(r"^> \S+ \S+ \S+ ([0-9.]+)$", text, re.M)]


def measure(name: str, pid: int, port: int, qfile: Path, seconds: float) -> dict[str, float]:
    dnsperf(port, qfile, 1, None)  # warm
    before = cpu_seconds(pid)
    full = dnsperf(port, qfile, seconds, None)
    cpu = cpu_seconds(pid) - before
    lat = sorted(latencies_ms(dnsperf(port, qfile, seconds, 5000)))
    return {
        "cpu_us": cpu / max(completed(full), 1) * 1e6,
        "avg": statistics.fmean(lat) if lat else float("nan"),
        "p50": lat[len(lat) // 2] if lat else float("nan"),
        "p99": lat[int(len(lat) * 0.99)] if lat else float("nan"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=5.0)
    args = p.parse_args()
    for tool in ("dnsperf", "dnsmasq", "taskset"):
        if shutil.which(tool) is None:
            print(f"floor: {tool} is missing", file=sys.stderr)
            return 3
    tmp = Path(tempfile.mkdtemp(prefix="parafoudre-floor-"))
    qfile = tmp / "q.txt"
    qfile.write_text("".join(f"h{i}.bench.test A\n" for i in range(1000)))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        rport, dport = free_port(), free_port()
        script = tmp / "responder.py"
        script.write_text(RESPONDER)
        procs.append(
            subprocess.Popen(["taskset", "-c", "0", sys.executable, str(script), str(rport)])
        )
        dnsmasq = ["taskset", "-c", "0", "dnsmasq", "-k", "-C", "/dev/null", f"-p{dport}"]
        dnsmasq += ["--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv"]
        dnsmasq += ["--no-hosts", "--address=/bench.test/192.0.2.1", "--log-facility=-"]
        if os.geteuid() == 0:
            dnsmasq.append("--user=root")
        procs.append(subprocess.Popen(dnsmasq, stderr=subprocess.DEVNULL))
        time.sleep(1.5)
        rows = [
            ("python floor (uvloop, recvfrom/sendto)", procs[0].pid, rport),
            ("dnsmasq", procs[1].pid, dport),
        ]
        print("| server | CPU µs/answer (full speed) | avg ms | p50 ms | p99 ms (5,000 q/s) |")
        print("|---|---:|---:|---:|---:|")
        for name, pid, port in rows:
            r = measure(name, pid, port, qfile, args.duration)
            print(
                f"| {name} | {r['cpu_us']:.2f} | {r['avg']:.3f} | {r['p50']:.3f} | {r['p99']:.3f} |"
            )
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
