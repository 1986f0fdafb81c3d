"""Rebuild the feed excerpts in this folder from the saved feeds (see ORIGIN.md).

Run once where /work/shared/feeds exists: ``python tests/data/feeds/make_excerpts.py``.
Every data line is copied verbatim and in file order; only the choice of lines is ours.
The synthetic files (``synthetic_*``) are written by hand and not touched here.
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

SRC = Path("/work/shared/feeds")
OUT = Path(__file__).resolve().parent


def lines_of(path: Path) -> list[str]:
    """Physical lines with their endings (the last one may have none)."""
    return path.read_text("utf-8").splitlines(keepends=True)


def write(name: str, lines: list[str]) -> None:
    (OUT / name).write_text("".join(lines), "utf-8")


def take(
    path: Path,
    keep: re.Pattern[str] | None,
    names: set[str],
    extract: re.Pattern[str],
    extra: int = 0,
    extra_pat: re.Pattern[str] | None = None,
) -> list[str]:
    """Header/comment lines, lines whose name is in ``names``, and ``extra`` lines of a kind."""
    out: list[str] = []
    left = extra
    for line in lines_of(path):
        s = line.strip()
        if not s or (keep is not None and keep.match(s)):
            out.append(line)
            continue
        m = extract.search(s)
        if m and m.group(1).lower().rstrip(".") in names:
            out.append(line)
        elif left and extra_pat is not None and extra_pat.search(s):
            out.append(line)
            left -= 1
    return out


def urlhaus_filter() -> None:
    base = SRC / "urlhaus"
    hosts = [
        ln.split()[1]
        for ln in lines_of(base / "urlhaus-filter-hosts.txt")
        if ln.startswith("0.0.0.0 ")
    ]
    names = set(hosts[:120]) | {h for h in hosts if "xn--" in h}
    ip = re.compile(r"^(\|\|)?(\*\.)?\d+\.\d+\.\d+\.\d+\^?$")
    com = re.compile(r"^[#!]")
    write(
        "urlhaus-filter-hosts.txt",
        take(base / "urlhaus-filter-hosts.txt", com, names, re.compile(r"^0\.0\.0\.0\s+(\S+)")),
    )
    write(
        "urlhaus-filter-dnsmasq.conf",
        take(base / "urlhaus-filter-dnsmasq.conf", com, names, re.compile(r"^address=/([^/]+)/")),
    )
    write(
        "urlhaus-filter-rpz.conf",
        take(
            base / "urlhaus-filter-rpz.conf",
            re.compile(r"^(;|\$|@|NS)"),
            names,
            re.compile(r"^(\S+)\s+CNAME"),
        ),
    )
    dom = take(base / "urlhaus-filter-domains.txt", com, names, re.compile(r"^(\S+)$"), 40, ip)
    write("urlhaus-filter-domains.txt", dom)
    (OUT / "urlhaus-filter-domains.txt.gz").write_bytes(
        gzip.compress("".join(dom).encode(), 9, mtime=0)
    )
    write(
        "urlhaus-filter-agh.txt",
        take(base / "urlhaus-filter-agh.txt", com, names, re.compile(r"^\|\|([^/^$]+)\^$"), 40, ip),
    )
    write(
        "urlhaus-filter-wildcard.txt",
        take(base / "urlhaus-filter-wildcard.txt", com, names, re.compile(r"^\*\.(\S+)$"), 40, ip),
    )
    # uBO list: the same hosts, 40 IPs, 40 URL-path rules that must not block their host.
    path_rule = re.compile(r"^\|\|[^/]+/")
    out, ips, paths = [], 40, 40
    for line in lines_of(base / "urlhaus-filter.txt"):
        s = line.strip()
        if not s or s.startswith("!") or s in names:
            out.append(line)
        elif ips and ip.match(s):
            out.append(line)
            ips -= 1
        elif paths and path_rule.match(s):
            out.append(line)
            paths -= 1
        elif s.endswith("^$all") and "/" not in s:
            out.append(line)
    write("urlhaus-filter.txt", out)


def blocklistproject() -> None:
    base = SRC / "blocklistproject"
    names = {
        ln.split()[1] for ln in lines_of(base / "ransomware.hosts.txt") if ln.startswith("0.0.0.0 ")
    }
    names = set(sorted(names)[:150])
    com = re.compile(r"^[#!]")
    write(
        "ransomware.hosts.txt",
        take(base / "ransomware.hosts.txt", com, names, re.compile(r"^0\.0\.0\.0\s+(\S+)")),
    )
    write(
        "ransomware-nl.domains.txt",
        take(base / "ransomware-nl.domains.txt", com, names, re.compile(r"^(\S+)$")),
    )
    write(
        "ransomware-ags.adblock.txt",
        take(base / "ransomware-ags.adblock.txt", com, names, re.compile(r"^\|\|([^^]+)\^$")),
    )
    write(
        "ransomware-dnsmasq.txt",
        take(base / "ransomware-dnsmasq.txt", com, names, re.compile(r"^server=/([^/]+)/")),
    )


def pick(path: Path, head: int, preds: list[re.Pattern[str]], plain: int) -> list[str]:
    """The first ``head`` lines, every line matching one of ``preds``, ``plain`` other lines."""
    out = []
    for i, line in enumerate(lines_of(path)):
        if i < head or any(p.search(line) for p in preds):
            out.append(line)
        elif plain and i % 997 == 0:
            out.append(line)
            plain -= 1
    return out


def singles() -> None:
    write(
        "stevenblack_hosts.excerpt.txt",
        pick(
            SRC / "stevenblack/stevenblack_unified_hosts_2022-05-05.txt",
            60,
            [
                re.compile(p)
                for p in (
                    r"^0\.0\.0\.0 (inf|www|fe|ff)\s*$",
                    r"-\.|\.-",
                    r"_",
                    r"\S\s+#",
                    r"\t",
                    r"xn--",
                )
            ],
            40,
        ),
    )
    write(
        "phishing-domains-ACTIVE.excerpt.txt",
        pick(
            SRC / "phishing_database/phishing-domains-ACTIVE_2026-03-13.txt",
            0,
            [
                re.compile(p)
                for p in (
                    r"\.\s*$",
                    r"[ \t]+\n",
                    r"[%?*@]",
                    r"^bit\.ly",
                    r"docs\.google\.com",
                    r"[a-z0-9]{63}\.",
                    r"_",
                )
            ],
            60,
        )
        + [
            ln
            for ln in lines_of(SRC / "phishing_database/phishing-domains-ACTIVE_2026-03-13.txt")
            if re.match(r"^10[0-9]\.\d+\.\d+\.\d+\s*$", ln)
        ][:20],
    )
    write(
        "phishing-domains-INVALID.txt",
        lines_of(SRC / "phishing_database/phishing-domains-INVALID_2026-08-01.txt"),
    )
    write(
        "phishing-links-INVALID.txt",
        lines_of(SRC / "phishing_database/phishing-links-INVALID_2026-08-01.txt"),
    )
    tf = lines_of(SRC / "threatfox/threatfox_hostfile_domains_2023-11-17_defender.csv")
    junk = re.compile(r"^(\d[\d.]*|[a-z]+|[^,]*[@=/_][^,]*|.*\.-.*), IOC")
    seen: dict[str, int] = {}
    for ln in tf:
        seen[ln] = seen.get(ln, 0) + 1
    dups = [ln for ln, n in seen.items() if n > 1][:10]
    out = [tf[0]] + [ln for ln in tf[1:-1] if junk.match(ln) or ln in dups] + tf[1:60:3] + [tf[-1]]
    write("threatfox_defender.excerpt.csv", out)
    write(
        "urlhaus_csv_online.excerpt.csv",
        lines_of(SRC / "urlhaus/urlhaus_csv_online_2026-08-18.excerpt.csv"),
    )
    uh = lines_of(SRC / "urlhaus/urlhaus_hostfile_2023-07-07.txt")
    write(
        "urlhaus_hostfile.excerpt.txt",
        uh[:9] + [ln for ln in uh[9:] if re.search(r"[A-Z]|xn--", ln)] + uh[9:40] + uh[-3:],
    )
    write(
        "twitone_urlhaus.excerpt.rpz",
        lines_of(SRC / "urlhaus/twitOne_phishing_urlhaus_2025-06-30.rpz")[:71],
    )
    write(
        "romainmarcoux_ab.excerpt.txt",
        pick(
            SRC / "romainmarcoux/full-domains-ab_2026-08-22.txt",
            0,
            [re.compile(r"^[0-9.]+\s*$"), re.compile(r"^[^.\n]+\.xn--")],
            30,
        ),
    )
    ut1 = lines_of(SRC / "ut1/ut1_malware_domains_2025-07-13.txt")
    shared = re.compile(r"^[a-z0-9-]+\.(github\.io|vercel\.app|webflow\.io)$")
    write(
        "ut1_malware_domains.excerpt.txt",
        [ln for ln in ut1 if "_" in ln][:15]
        + [ln for ln in ut1 if shared.match(ln)][:30]
        + [ln for ln in ut1 if re.match(r"^[0-9.]+$", ln)][:20]
        + ut1[::4000],
    )


if __name__ == "__main__":
    if not SRC.is_dir():
        sys.exit(f"{SRC} not found")
    urlhaus_filter()
    blocklistproject()
    singles()
