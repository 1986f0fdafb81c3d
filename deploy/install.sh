#!/usr/bin/env bash
# Parafoudre installer for Debian, Ubuntu and Raspberry Pi OS (systemd, Python 3.11 or newer).
#
#   sudo ./deploy/install.sh                      install, or upgrade when already installed
#   sudo ./deploy/install.sh --ad-domain mairie.local --dc 192.168.1.2
#   sudo ./deploy/install.sh --uninstall          remove it (keeps the config and the block log)
#   ./deploy/install.sh --help
#
# What it does: a virtual environment in /opt/parafoudre/venv, the `parafoudre` system user,
# /etc/parafoudre/parafoudre.yaml from the example (never overwritten), the systemd units
# (resolver + hourly feeds timer), a first feed update, then a check that the box answers.
# Run it again to upgrade. `--root DIR` installs into DIR as if it were `/` (for CI and image
# builds): nothing is done to the running system, the commands it would run are listed instead.
#
# Exit codes: 0 done; 1 failed; 2 bad option; 3 installed but not started (port 53 is taken).

set -euo pipefail
umask 022

ORIG_ARGS="$*"
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

ROOT=""
WHEEL=""
PYTHON=${PYTHON:-python3}
LAN=""
AD_DOMAIN=""
DC=""
NO_START=0
NO_FEEDS=0
OFFLINE=0
FIX_PORT53=0
CHECK_PORT53=0
UNINSTALL=0

usage() {
    cat <<'EOF'
Usage: install.sh [options]

Installs or upgrades Parafoudre (protective DNS resolver). Run as root (sudo).

  --ad-domain NAME   the Windows (Active Directory) domain, e.g. mairie.local, and
  --dc IP            its domain controller: its names go to the DC (new config only)
  --lan-ip IP/LEN    the box's LAN address and network, e.g. 192.168.1.5/24
                     (default: detected from the default route; new config only)
  --fix-port53       if systemd-resolved's stub listener holds port 53, turn it off
                     (/etc/systemd/resolved.conf.d/parafoudre.conf: DNSStubListener=no)
  --check-port53     only check who listens on Parafoudre's ports (with --fix-port53:
                     and fix systemd-resolved), on an existing installation
  --no-start         install and enable, but do not start the service
  --no-feeds         skip the first feed update (the hourly timer will do it)
  --wheel FILE       install this wheel instead of the source tree around this script
  --python PY        Python interpreter for the virtual environment (default: python3)
  --offline          no network: dependencies must be installed already (Debian
                     packages python3-dnslib, python3-yaml, ...; the venv sees them);
                     implies --no-feeds
  --root DIR         install into DIR as if it were / (alias: --prefix). Touches nothing
                     else: systemctl, useradd, chown, port checks are only listed.
  --uninstall        remove the service, the timer, the venv and the user; keep
                     /etc/parafoudre (config) and /var/lib/parafoudre (block log)
  -h, --help         this help

Docs: deploy/DHCP.md (hand out the box as DNS server), deploy/CONDITIONAL-FORWARDING.md.
EOF
}

# --- messages ------------------------------------------------------------------------------------

step() { printf '\n==> %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
warn() { printf '    ATTENTION / WARNING: %s\n' "$*" >&2; }
die() {
    printf '\nERREUR / ERROR: %s\n' "$1" >&2
    exit "${2:-1}"
}

# --- options -------------------------------------------------------------------------------------

need_arg() {
    if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)" 2; fi
}

while [ "$#" -gt 0 ]; do
    case "$1" in
    --root | --prefix)
        need_arg "$@"
        ROOT=$2
        shift 2
        ;;
    --root=* | --prefix=*)
        ROOT=${1#*=}
        shift
        ;;
    --wheel)
        need_arg "$@"
        WHEEL=$2
        shift 2
        ;;
    --python)
        need_arg "$@"
        PYTHON=$2
        shift 2
        ;;
    --lan-ip)
        need_arg "$@"
        LAN=$2
        shift 2
        ;;
    --ad-domain)
        need_arg "$@"
        AD_DOMAIN=$2
        shift 2
        ;;
    --dc)
        need_arg "$@"
        DC=$2
        shift 2
        ;;
    --no-start) NO_START=1 && shift ;;
    --no-feeds) NO_FEEDS=1 && shift ;;
    --offline) OFFLINE=1 && NO_FEEDS=1 && shift ;;
    --fix-port53) FIX_PORT53=1 && shift ;;
    --check-port53) CHECK_PORT53=1 && shift ;;
    --uninstall) UNINSTALL=1 && shift ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option '$1' (see --help)" 2 ;;
    esac
done

if [ -n "$AD_DOMAIN" ] && [ -z "$DC" ]; then die "--ad-domain needs --dc (the domain controller's address)" 2; fi
if [ -n "$DC" ] && [ -z "$AD_DOMAIN" ]; then die "--dc needs --ad-domain (the Windows domain)" 2; fi

if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT" || die "cannot create $ROOT" 2
    ROOT=$(cd "$ROOT" && pwd)
    [ "$ROOT" != "/" ] || ROOT=""
fi

# Paths on the target system, and where we write them (the same without --root).
OPT=$ROOT/opt/parafoudre
VENV=$OPT/venv
ETC=$ROOT/etc/parafoudre
CONF=$ETC/parafoudre.yaml
STATE=$ROOT/var/lib/parafoudre
UNITDIR=$ROOT/etc/systemd/system
DROPIN=$ROOT/etc/systemd/resolved.conf.d/parafoudre.conf
BIN_LINK=$ROOT/usr/local/bin/parafoudre
UNITS="parafoudre.service parafoudre-feeds.service parafoudre-feeds.timer"
WOULD_RUN_LOG=$ROOT/var/log/parafoudre-install.log

# Run a command that changes the live system; with --root, only list it.
sys_run() {
    if [ -n "$ROOT" ]; then
        say "would run: $*"
        mkdir -p "$(dirname "$WOULD_RUN_LOG")"
        printf 'would run: %s\n' "$*" >>"$WOULD_RUN_LOG"
        return 0
    fi
    "$@"
}

# --- checks before anything is changed -----------------------------------------------------------

preflight() {
    if [ -z "$ROOT" ]; then
        [ "$(id -u)" -eq 0 ] || die "run it as root: sudo $0 $ORIG_ARGS"
        [ -d /run/systemd/system ] ||
            die "systemd is not running on this machine (a container?): see deploy/DOCKER.md"
    fi
    local os_id="" os_like="" os_name="this system"
    if [ -r /etc/os-release ]; then
        # shellcheck disable=SC1091
        os_id=$(. /etc/os-release && printf '%s' "${ID:-}")
        # shellcheck disable=SC1091
        os_like=$(. /etc/os-release && printf '%s' "${ID_LIKE:-}")
        # shellcheck disable=SC1091
        os_name=$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-$os_id}")
    fi
    case " $os_id $os_like " in
    *" debian "* | *" ubuntu "* | *" raspbian "*) say "system: $os_name" ;;
    *) warn "made for Debian, Ubuntu and Raspberry Pi OS; $os_name is untested, going on" ;;
    esac
}

find_python() {
    command -v "$PYTHON" >/dev/null 2>&1 ||
        die "no '$PYTHON' found: install Python 3.11 or newer (apt-get install python3)"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
        die "Parafoudre needs Python 3.11 or newer; $("$PYTHON" -V 2>&1) found (Debian 12, Ubuntu 24.04 and Raspberry Pi OS 12 have it)"
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [ -z "$ROOT" ] && command -v apt-get >/dev/null 2>&1; then
            say "installing python3-venv (needed for the virtual environment)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >/dev/null ||
                die "apt-get install python3-venv failed: run it by hand, then this script again"
        else
            die "Python's venv module is missing: apt-get install python3-venv"
        fi
    fi
    say "python: $("$PYTHON" -V 2>&1) ($(command -v "$PYTHON"))"
}

# --- the virtual environment ---------------------------------------------------------------------

make_venv() {
    local want have
    want=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ -x "$VENV/bin/python" ]; then
        have=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
        if [ "$have" = "$want" ]; then
            say "upgrading the existing virtual environment $VENV (Python $have)"
            return
        fi
        say "the virtual environment was made for Python ${have:-?}, now $want: making a new one"
        rm -rf "$VENV"
    fi
    mkdir -p "$OPT"
    local args=()
    if [ "$OFFLINE" -eq 1 ]; then args+=(--system-site-packages); fi
    "$PYTHON" -m venv ${args[@]+"${args[@]}"} "$VENV" || die "cannot create the virtual environment $VENV"
    say "created $VENV"
}

build_wheel() {
    # Prints the path of the wheel to install.
    if [ -n "$WHEEL" ]; then
        [ -f "$WHEEL" ] || die "no such wheel: $WHEEL"
        printf '%s\n' "$WHEEL"
        return
    fi
    if ! grep -q '^name = "parafoudre"' "$SRC_DIR/pyproject.toml" 2>/dev/null; then
        die "no Parafoudre source tree around $0: give --wheel FILE"
    fi
    # Build from a copy: the source tree stays clean (no build/ nor *.egg-info), even read-only.
    mkdir -p "$TMP/src" "$TMP/wheel"
    tar -C "$SRC_DIR" \
        --exclude=./.git --exclude=./.venv --exclude='*/__pycache__' --exclude=./build \
        --exclude=./dist --exclude='*.egg-info' --exclude=./.mypy_cache --exclude=./.ruff_cache \
        --exclude=./.pytest_cache --exclude=./state --exclude=./bench/out --exclude='*.so' \
        -cf - . | tar -C "$TMP/src" -xf -
    local args=(--no-deps -q -w "$TMP/wheel")
    if [ "$OFFLINE" -eq 1 ]; then args+=(--no-build-isolation --no-index); fi
    if ! "$VENV/bin/python" -m pip --disable-pip-version-check wheel "${args[@]}" "$TMP/src" >&2; then
        if [ "$OFFLINE" -eq 1 ]; then
            die "building Parafoudre offline needs the 'wheel' package (apt-get install python3-wheel) or setuptools 70.1 or newer; or build the wheel elsewhere and give --wheel FILE"
        fi
        die "building Parafoudre failed (see the messages above)"
    fi
    local built
    built=$(find "$TMP/wheel" -name 'parafoudre-*.whl' | head -n 1)
    [ -n "$built" ] || die "building Parafoudre produced no wheel"
    printf '%s\n' "$built"
}

install_package() {
    local wheel pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
    wheel=$(build_wheel)
    if [ "$OFFLINE" -eq 1 ]; then
        "${pip[@]}" install -q --no-index --no-deps --force-reinstall "$wheel" ||
            die "installing $wheel failed"
    else
        # Dependencies first (only what is missing or too old), then Parafoudre itself even when
        # the version number did not change.
        "${pip[@]}" install -q --upgrade "$wheel" ||
            die "installing the dependencies failed: is the box on the Internet? (pip needs pypi.org)"
        "${pip[@]}" install -q --no-deps --force-reinstall "$wheel" || die "installing $wheel failed"
    fi
    local version
    version=$("$VENV/bin/parafoudre" --version 2>&1) ||
        die "the installed command does not run: $version"
    say "installed: $version"
    mkdir -p "$(dirname "$BIN_LINK")"
    if [ -L "$BIN_LINK" ] || [ ! -e "$BIN_LINK" ]; then
        ln -sfn /opt/parafoudre/venv/bin/parafoudre "$BIN_LINK"
        say "command: /usr/local/bin/parafoudre"
    else
        warn "$BIN_LINK exists and is not ours: left alone (use /opt/parafoudre/venv/bin/parafoudre)"
    fi
    # The docs the units and messages point to.
    local f
    [ -f "$SRC_DIR/README.md" ] && install -m 0644 "$SRC_DIR/README.md" "$OPT/README.md"
    if [ -f "$SRC_DIR/feeds/README.md" ]; then
        install -d -m 0755 "$OPT/feeds"
        install -m 0644 "$SRC_DIR/feeds/README.md" "$OPT/feeds/README.md"
    fi
    install -d -m 0755 "$OPT/docs"
    for f in "$SCRIPT_DIR"/*.md; do
        [ -f "$f" ] && install -m 0644 "$f" "$OPT/docs/"
    done
    return 0
}

# --- user, config, units -------------------------------------------------------------------------

make_user() {
    if [ -z "$ROOT" ] && id -u parafoudre >/dev/null 2>&1; then
        say "user parafoudre exists"
        return
    fi
    sys_run useradd --system --user-group --home-dir /var/lib/parafoudre --no-create-home \
        --shell /usr/sbin/nologin --comment "Parafoudre DNS resolver" parafoudre
}

detect_lan() {
    # The address the default route leaves from, with its prefix length; nothing is sent.
    local src
    command -v ip >/dev/null 2>&1 || return 0
    src=$(ip -o -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1)
    [ -n "$src" ] || return 0
    ip -o -4 addr show 2>/dev/null | awk -v ip="$src" '{ split($4, a, "/"); if (a[1] == ip) { print $4; exit } }'
}

write_config() {
    install -d -m 0755 "$ETC"
    install -m 0644 "$SCRIPT_DIR/parafoudre.example.yaml" "$ETC/parafoudre.example.yaml"
    if [ ! -e "$ETC/local-blocklist.txt" ]; then
        printf '%s\n' "# Your own blocked names, one per line (with every name under them)." \
            "# After a change: systemctl reload parafoudre" >"$ETC/local-blocklist.txt"
        chmod 0644 "$ETC/local-blocklist.txt"
    fi
    if [ -e "$CONF" ]; then
        say "kept the existing config $CONF (never overwritten)"
    else
        local lan=$LAN
        if [ -z "$lan" ] && [ -z "$ROOT" ]; then lan=$(detect_lan); fi
        if [ -z "$lan" ]; then
            warn "LAN address unknown: the config keeps the example's 192.168.1.5; edit server.listen and acl.allow"
        fi
        "$VENV/bin/python" - "$SCRIPT_DIR/parafoudre.example.yaml" "$CONF.new" "$lan" \
            "$AD_DOMAIN" "$DC" <<'PY' || die "cannot write $CONF"
import datetime
import ipaddress
import re
import sys

src, dst, lan, domain, dc = sys.argv[1:6]
text = open(src, encoding="utf-8").read()
subst = {}
if lan:
    iface = ipaddress.ip_interface(lan if "/" in lan else lan + "/24")
    net = iface.network
    subst["192.168.1.5"] = str(iface.ip)
    subst["192.168.1.0/24"] = str(net)
    keep = min(3, net.prefixlen // 8)
    octets = str(net.network_address).split(".")[:keep]
    subst["1.168.192.in-addr.arpa"] = ".".join(reversed(octets)) + ".in-addr.arpa"
if domain:
    ipaddress.ip_address(dc.strip("[]"))
    subst["192.168.1.2"] = dc
    subst["mairie.local"] = domain.strip().rstrip(".").lower()
if subst:
    # One pass, whole tokens only: 192.168.1.2 must not match inside 192.168.1.25.
    tokens = sorted(subst, key=len, reverse=True)
    pattern = "|".join(re.escape(t) for t in tokens)
    text = re.sub(rf"(?<![\w-])({pattern})(?![\w/-])(?!\.\d)", lambda m: subst[m[1]], text)
out = []
if not domain:
    # No Windows domain given: comment out the example's forwarding and its local record.
    skipping = False
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("forward_zones:"):
            skipping, block_indent = True, indent
            out.append(" " * indent + "# " + stripped)
            continue
        if skipping and stripped and indent <= block_indent and not stripped.startswith("#"):
            skipping = False
        if (skipping and stripped) or ("mairie.local" in line and not stripped.startswith("#")):
            out.append(" " * indent + "# " + stripped)
        else:
            out.append(line)
    out.insert(0, "# Windows domain: see /opt/parafoudre/docs/CONDITIONAL-FORWARDING.md")
else:
    out = text.splitlines()
stamp = datetime.date.today().isoformat()
out.insert(0, f"# Written by deploy/install.sh on {stamp}; yours to edit, never overwritten.")
with open(dst, "w", encoding="utf-8") as fh:
    fh.write("\n".join(out) + "\n")
PY
        chmod 0640 "$CONF.new"
        mv "$CONF.new" "$CONF"
        say "wrote $CONF${lan:+ (LAN $lan)}${AD_DOMAIN:+, domain $AD_DOMAIN via $DC}"
    fi
    sys_run chown root:parafoudre /etc/parafoudre/parafoudre.yaml
    sys_run chmod 0640 /etc/parafoudre/parafoudre.yaml
    local msg
    if ! msg=$("$VENV/bin/parafoudre" check-config -c "$CONF" 2>&1); then
        printf '    %s\n' "$msg" >&2
        die "the config $CONF is refused (line and fix above): correct it, then run this script again"
    fi
    say "config checked: OK"
    install -d -m 0750 "$STATE"
    sys_run chown parafoudre:parafoudre /var/lib/parafoudre
}

install_units() {
    install -d -m 0755 "$UNITDIR"
    local u
    for u in $UNITS; do
        if [ -f "$SCRIPT_DIR/$u" ]; then
            install -m 0644 "$SCRIPT_DIR/$u" "$UNITDIR/$u"
            say "unit: /etc/systemd/system/$u"
        else
            warn "$SCRIPT_DIR/$u is missing: not installed"
        fi
    done
    sys_run systemctl daemon-reload
    if [ -f "$UNITDIR/parafoudre-feeds.timer" ]; then
        sys_run systemctl enable parafoudre.service parafoudre-feeds.timer
    else
        sys_run systemctl enable parafoudre.service
    fi
}

# --- port 53 -------------------------------------------------------------------------------------

# Prints one line per other program listening on one of our ports:
#   kind<TAB>conflict|info<TAB>protocols<TAB>address<TAB>program<TAB>pid<TAB>our addresses
# kind is "stub" for systemd-resolved, "other" otherwise. PARAFOUDRE_SS_FILE (tests) replaces
# the output of `ss -H -lnptu`.
port_listeners() {
    local ss_out
    if [ -n "${PARAFOUDRE_SS_FILE:-}" ]; then
        ss_out=$(cat "$PARAFOUDRE_SS_FILE")
    elif [ -n "$ROOT" ]; then
        return 0
    elif command -v ss >/dev/null 2>&1; then
        ss_out=$(ss -H -lnptu 2>/dev/null || true)
    else
        warn "'ss' not found (package iproute2): port 53 not checked"
        return 0
    fi
    printf '%s\n' "$ss_out" >"$TMP/ss.txt"
    "$VENV/bin/python" - "$CONF" "$TMP/ss.txt" <<'PY'
import re
import sys
from pathlib import Path

from resolver.config import load
from resolver.config.schema import parse_hostport

ours = [parse_hostport(s, 53) for s in load(Path(sys.argv[1])).server.listen]
ports = {p for _, p in ours if p}


def family(a: str) -> int:
    return 6 if ":" in a else 4


def clash(a: str, b: str) -> bool:
    if a == b or "*" in (a, b):
        return True
    for x, y in ((a, b), (b, a)):
        if x == "0.0.0.0" and family(y) == 4:
            return True
        if x == "::" and family(y) == 6:
            return True
    return False


def is_ours(pid: str) -> bool:
    try:
        return "parafoudre.service" in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


seen: dict[tuple[str, str, str, str], list[str]] = {}
hits: dict[tuple[str, str, str, str], set[str]] = {}
for line in Path(sys.argv[2]).read_text().splitlines():
    f = line.split()
    if len(f) < 5 or f[0] not in ("udp", "tcp"):
        continue
    host, _, port = f[4].rpartition(":")
    host = host.strip("[]").split("%")[0]
    if not port.isdigit() or int(port) not in ports:
        continue
    m = re.search(r'\(\("([^"]+)",pid=(\d+)', " ".join(f[6:]))
    name, pid = (m[1], m[2]) if m else ("an unknown program", "")
    if pid and is_ours(pid):
        continue
    key = (host, port, name, pid)
    seen.setdefault(key, []).append(f[0].upper())
    mine = {f"{h}:{p}" for h, p in ours if p == int(port) and clash(h, host)}
    hits.setdefault(key, set()).update(mine)
for (host, port, name, pid), protos in seen.items():
    kind = "stub" if name.startswith("systemd-resolve") else "other"
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    state = "conflict" if hits[(host, port, name, pid)] else "info"
    mine = ", ".join(sorted(hits[(host, port, name, pid)]))
    print("\t".join([kind, state, "+".join(sorted(set(protos))), where, name, pid, mine]))
PY
}

fix_resolved() {
    step "systemd-resolved : arrêt de son écoute sur le port 53 / turning off its stub listener"
    install -d -m 0755 "$(dirname "$DROPIN")"
    printf '%s\n' "# Written by Parafoudre's install.sh: Parafoudre answers DNS on port 53." \
        "# Remove this file and restart systemd-resolved to undo." \
        "[Resolve]" "DNSStubListener=no" >"$DROPIN"
    chmod 0644 "$DROPIN"
    say "wrote /etc/systemd/resolved.conf.d/parafoudre.conf (DNSStubListener=no)"
    # /etc/resolv.conf usually points at the stub (127.0.0.53), which is going away: point the
    # box at the servers resolved itself uses, so the box keeps resolving (feed downloads).
    local target
    target=$(readlink "$ROOT/etc/resolv.conf" 2>/dev/null || true)
    case "$target" in
    *stub-resolv.conf)
        sys_run ln -sfn /run/systemd/resolve/resolv.conf /etc/resolv.conf
        say "/etc/resolv.conf now lists resolved's upstream servers instead of 127.0.0.53"
        ;;
    esac
    sys_run systemctl restart systemd-resolved
}

# Returns 0 when Parafoudre can bind its addresses, 1 when another program holds one of them.
check_port53() {
    step "Port 53 : qui écoute déjà ? / Port 53: who else listens?"
    local lines kind state protos where name pid mine blocked=0 stub_seen=0
    lines=$(port_listeners) || {
        warn "could not check port 53"
        return 0
    }
    if [ -z "$lines" ]; then
        say "no other program listens on Parafoudre's ports: OK"
        return 0
    fi
    while IFS=$'\t' read -r kind state protos where name pid mine; do
        [ -n "$kind" ] || continue
        if [ "$kind" = "stub" ]; then
            stub_seen=1
            if [ "$state" = "conflict" ]; then
                say "systemd-resolved (pid $pid) answers DNS for this machine itself on $where ($protos)."
                say "Parafoudre wants $mine, which includes that address: both cannot listen there."
                blocked=1
            else
                say "systemd-resolved answers for this machine itself on $where: no conflict with $(listen_list)."
            fi
        else
            if [ "$state" = "conflict" ]; then
                say "$name${pid:+ (pid $pid)} already listens on $where ($protos); Parafoudre wants $mine."
                say "Two DNS servers cannot share one address and port. Either:"
                say "  1. stop it if nothing needs it: systemctl status ${pid:-<pid>} shows its service, then"
                say "     systemctl disable --now <that service>"
                say "  2. or make it and Parafoudre listen on different addresses (server.listen in"
                say "     /etc/parafoudre/parafoudre.yaml: the LAN address and 127.0.0.1, never 0.0.0.0)."
                blocked=1
            else
                say "$name listens on $where ($protos): no conflict with $(listen_list)."
            fi
        fi
    done <<<"$lines"
    if [ "$stub_seen" -eq 1 ] && [ "$FIX_PORT53" -eq 1 ]; then
        fix_resolved
        if [ -z "$ROOT" ] && [ -z "${PARAFOUDRE_SS_FILE:-}" ]; then
            sleep 1
            if port_listeners | grep -q $'^[a-z]*\tconflict'; then
                return 1
            fi
        fi
        # With the stub gone, only other programs can still be in the way.
        if printf '%s\n' "$lines" | grep -q $'^other\tconflict'; then return 1; fi
        return 0
    fi
    if [ "$blocked" -eq 1 ] && [ "$stub_seen" -eq 1 ]; then
        say "For systemd-resolved, two ways out:"
        say "  1. keep it, and give Parafoudre only the LAN address and 127.0.0.1 in server.listen"
        say "     (not 0.0.0.0): resolved keeps 127.0.0.53 for the box itself;"
        say "  2. or turn its listener off: run this script again with --fix-port53"
        say "     (writes /etc/systemd/resolved.conf.d/parafoudre.conf: DNSStubListener=no)."
    fi
    return "$blocked"
}

listen_list() {
    "$VENV/bin/python" - "$CONF" <<'PY' 2>/dev/null || printf 'the configured addresses'
import sys
from pathlib import Path

from resolver.config import load

print(", ".join(load(Path(sys.argv[1])).server.listen))
PY
}

# --- feeds, start, check -------------------------------------------------------------------------

first_feed_update() {
    step "Première mise à jour des listes / First threat-feed update"
    if [ -n "$ROOT" ]; then
        sys_run systemctl start parafoudre-feeds.service
        return 0
    fi
    if [ ! -f "$UNITDIR/parafoudre-feeds.service" ]; then
        warn "no feeds unit: skipped"
        return 0
    fi
    say "downloading and compiling the lists (a minute or two)..."
    # As the service's user, in its sandbox, exactly as the hourly timer will run it.
    if timeout 900 systemctl start parafoudre-feeds.service; then
        say "feeds updated: OK"
        return 0
    fi
    local code
    code=$(systemctl show -p ExecMainStatus --value parafoudre-feeds.service 2>/dev/null || echo "?")
    case "$code" in
    3) warn "some feeds failed; the others are in use (details: journalctl -u parafoudre-feeds -e)" ;;
    4) warn "no feed could be used (no Internet?); the resolver works without them and the timer retries hourly (journalctl -u parafoudre-feeds -e)" ;;
    *) warn "the feed update failed (code $code): journalctl -u parafoudre-feeds -e; the timer retries hourly" ;;
    esac
    return 0
}

wait_answers() {
    # Ask each listen address for "localhost" (answered by Parafoudre itself: no Internet needed).
    "$VENV/bin/python" - "$CONF" 20 <<'PY'
import sys
import time
from pathlib import Path

from dnslib import DNSRecord

from resolver.config import load
from resolver.config.schema import parse_hostport

cfg = load(Path(sys.argv[1]))
deadline = time.monotonic() + float(sys.argv[2])
targets = []
for spec in cfg.server.listen:
    host, port = parse_hostport(spec, 53)
    targets.append(({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port, spec))
pending = list(targets)
while pending and time.monotonic() < deadline:
    for t in list(pending):
        host, port, spec = t
        try:
            raw = DNSRecord.question("localhost", "A").send(
                host, port, timeout=1.0, ipv6=":" in host
            )
            if DNSRecord.parse(raw).rr:
                print(f"    {spec}: answers")
                pending.remove(t)
        except Exception:
            pass
    if pending:
        time.sleep(0.5)
for _, _, spec in pending:
    print(f"    {spec}: NO ANSWER", file=sys.stderr)
sys.exit(1 if pending else 0)
PY
}

start_and_check() {
    step "Démarrage / Starting"
    sys_run systemctl restart parafoudre.service
    if [ -f "$UNITDIR/parafoudre-feeds.timer" ]; then sys_run systemctl start parafoudre-feeds.timer; fi
    [ -z "$ROOT" ] || return 0
    step "Vérification / Checking that the box answers"
    if ! wait_answers; then
        systemctl --no-pager --lines=15 status parafoudre.service >&2 || true
        die "the service does not answer: read 'journalctl -u parafoudre -e' (the last lines say why)"
    fi
    if "$VENV/bin/parafoudre" doctor --help >/dev/null 2>&1; then
        say "parafoudre doctor (as the service's user):"
        if ! runuser -u parafoudre -- "$VENV/bin/parafoudre" doctor -c /etc/parafoudre/parafoudre.yaml | sed 's/^/    /'; then
            warn "the doctor found a problem: see the FAIL lines above"
        fi
    fi
}

summary() {
    local ip
    ip=$("$VENV/bin/python" - "$CONF" <<'PY' 2>/dev/null || true
import sys
from pathlib import Path

from resolver.config import load
from resolver.config.schema import parse_hostport

for spec in load(Path(sys.argv[1])).server.listen:
    host, _ = parse_hostport(spec, 53)
    if not host.startswith("127.") and host not in ("::1", "0.0.0.0", "::"):
        print(host)
        break
PY
)
    local where_en="the box's address" where_fr="l'adresse de la box"
    if [ -n "$ip" ]; then where_en=$ip && where_fr=$ip; fi
    step "Terminé / Done"
    say "Config:      /etc/parafoudre/parafoudre.yaml  (then: systemctl restart parafoudre)"
    say "Block log:   /var/lib/parafoudre/blocks.sqlite"
    say "Check:       sudo parafoudre doctor -c /etc/parafoudre/parafoudre.yaml"
    say "Logs:        journalctl -u parafoudre -e ; journalctl -u parafoudre-feeds -e"
    say "Next step:   hand out $where_en as DNS server in the DHCP: /opt/parafoudre/docs/DHCP.md"
    say "             Windows domain: /opt/parafoudre/docs/CONDITIONAL-FORWARDING.md"
    say "Prochaine étape : donner $where_fr comme serveur DNS dans le DHCP (DHCP.md)."
}

# --- uninstall -----------------------------------------------------------------------------------

uninstall() {
    step "Désinstallation / Uninstalling Parafoudre"
    if [ -n "$ROOT" ] || systemctl list-unit-files parafoudre.service >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        sys_run systemctl disable --now $UNITS || true
    fi
    local u removed_dropin=0
    for u in $UNITS; do
        if [ -e "$UNITDIR/$u" ]; then
            rm -f "$UNITDIR/$u"
            say "removed /etc/systemd/system/$u"
        fi
    done
    sys_run systemctl daemon-reload || true
    if [ -d "$OPT" ]; then
        rm -rf "$OPT"
        say "removed /opt/parafoudre"
    fi
    if [ -L "$BIN_LINK" ] && [ "$(readlink "$BIN_LINK")" = /opt/parafoudre/venv/bin/parafoudre ]; then
        rm -f "$BIN_LINK"
        say "removed /usr/local/bin/parafoudre"
    fi
    if [ -f "$DROPIN" ]; then
        rm -f "$DROPIN"
        removed_dropin=1
        say "removed /etc/systemd/resolved.conf.d/parafoudre.conf (systemd-resolved's stub comes back)"
    fi
    if [ "$removed_dropin" -eq 1 ]; then sys_run systemctl restart systemd-resolved || true; fi
    if [ -n "$ROOT" ] || id -u parafoudre >/dev/null 2>&1; then
        sys_run userdel parafoudre || warn "could not remove the user parafoudre"
    fi
    step "Conservé / Kept"
    say "/etc/parafoudre       (config: a reinstall uses it again)"
    say "/var/lib/parafoudre   (block log and feed cache)"
    say "To erase them too: rm -rf /etc/parafoudre /var/lib/parafoudre"
    say "Remember the DHCP: hand out another DNS server before this box goes away."
}

# --- main ----------------------------------------------------------------------------------------

main() {
    if [ "$UNINSTALL" -eq 1 ]; then
        [ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || die "run it as root: sudo $0 --uninstall"
        uninstall
        return 0
    fi
    if [ "$CHECK_PORT53" -eq 1 ]; then
        [ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || die "run it as root: sudo $0 $ORIG_ARGS"
        if [ ! -x "$VENV/bin/python" ] || [ ! -f "$CONF" ]; then
            die "Parafoudre is not installed here (no $VENV or $CONF): run this script without --check-port53"
        fi
        TMP=$(mktemp -d)
        trap 'rm -rf "$TMP"' EXIT
        if check_port53; then return 0; fi
        die "port 53 is taken (see above)" 3
    fi
    step "Parafoudre : installation${ROOT:+ dans / into $ROOT}"
    [ -z "$ROOT" ] || say "--root: nothing outside $ROOT is changed; system commands are only listed"
    preflight
    find_python
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    step "Utilisateur / System user"
    make_user
    step "Logiciel / Software: $VENV"
    make_venv
    install_package
    step "Configuration"
    write_config
    step "Services systemd / systemd units"
    install_units
    local port_ok=0
    check_port53 || port_ok=1
    if [ "$NO_FEEDS" -eq 0 ]; then first_feed_update; fi
    if [ "$port_ok" -ne 0 ]; then
        summary
        die "installed, but not started: port 53 is taken (see above); fix it, then run this script again" 3
    fi
    if [ "$NO_START" -eq 0 ]; then
        start_and_check
    else
        say "--no-start: enabled, not started (systemctl start parafoudre)"
    fi
    summary
}

main
