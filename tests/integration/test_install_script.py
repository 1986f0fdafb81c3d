"""deploy/install.sh in a throw-away root: files written, idempotent, uninstall keeps the data.

``--root`` makes the script touch nothing outside the root (no systemctl, useradd, chown: they
are listed in <root>/var/log/parafoudre-install.log) and ``--offline`` keeps pip off the network.
Dependencies are not downloaded: the venv reaches this test environment's packages through
PYTHONPATH. Parafoudre itself is installed from a wheel this test builds with zipfile (building
from the source tree offline needs the ``wheel`` package, tested when it is installed).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from resolver.config import load

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "install.sh"
BASH = shutil.which("bash")
UNITS = ("parafoudre.service", "parafoudre-feeds.service", "parafoudre-feeds.timer")


def _has_venv() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("venv", "ensurepip"))


pytestmark = [
    pytest.mark.skipif(BASH is None, reason="bash is not installed"),
    pytest.mark.skipif(not _has_venv(), reason="Python's venv/ensurepip missing (python3-venv)"),
]


def build_wheel(out: Path) -> Path:
    """A pure-Python wheel of the tree, as setuptools would make it (packages and their data)."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version = meta["version"]
    dist = f"parafoudre-{version}.dist-info"
    path = out / f"parafoudre-{version}-py3-none-any.whl"
    records: list[str] = []

    def add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        zf.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append(f"{name},sha256={digest},{len(data)}")

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in ("resolver", "feeds", "dashboard"):
            for f in sorted((REPO / pkg).rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".so"):
                    add(zf, f.relative_to(REPO).as_posix(), f.read_bytes())
        requires = "".join(f"Requires-Dist: {d}\n" for d in meta["dependencies"])
        add(
            zf,
            f"{dist}/METADATA",
            f"Metadata-Version: 2.1\nName: parafoudre\nVersion: {version}\n{requires}".encode(),
        )
        add(
            zf,
            f"{dist}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: test_install_script\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        )
        add(zf, f"{dist}/entry_points.txt", b"[console_scripts]\nparafoudre = resolver.cli:main\n")
        add(zf, f"{dist}/top_level.txt", b"dashboard\nfeeds\nresolver\n")
        zf.writestr(f"{dist}/RECORD", "\n".join([*records, f"{dist}/RECORD,,"]) + "\n")
    return path


def env() -> dict[str, str]:
    """Hermetic: no pip config, no index, dependencies from this test's environment."""
    out = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    return out


def run_script(root: Path, *args: str, extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        [BASH or "bash", str(SCRIPT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**env(), **(extra_env or {})},
        check=False,
        cwd=root.parent,
    )
    return proc.returncode, proc.stdout + proc.stderr


def install(root: Path, *args: str, extra_env: dict[str, str] | None = None) -> str:
    code, out = run_script(root, *args, extra_env=extra_env)
    if code != 0:
        pytest.fail(f"install.sh {args} exited {code}:\n{out}")
    return out


def run_parafoudre(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "opt/parafoudre/venv/bin/parafoudre"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
        check=False,
        cwd=root.parent,
    )


BASE = ("--no-start", "--no-feeds", "--offline", "--python", sys.executable)


@dataclass
class Installed:
    root: Path
    wheel: Path
    output: str  # of the first run


@pytest.fixture(scope="module")
def first_install(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """One fresh installation (making a venv is the slow part); tests work on copies of it."""
    base = tmp_path_factory.mktemp("install")
    wheel = build_wheel(base)
    root = base / "root"
    return Installed(root, wheel, install(root, *BASE, "--wheel", str(wheel)))


@pytest.fixture
def root(first_install: Installed, tmp_path: Path) -> Path:
    """A copy of the installed root: an existing installation to upgrade, check or remove."""
    copy = tmp_path / "root"
    shutil.copytree(first_install.root, copy, symlinks=True)
    return copy


def test_first_install(first_install: Installed) -> None:
    root, out = first_install.root, first_install.output
    assert "created " in out and "Done" in out

    # The venv holds a working command, installed from the wheel (not this checkout).
    version = run_parafoudre(root, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("parafoudre ")
    where = subprocess.run(
        [
            str(root / "opt/parafoudre/venv/bin/python"),
            "-c",
            "import resolver; print(resolver.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
        check=True,
        cwd=root.parent,  # not the checkout: `python -c` puts the current directory first
    ).stdout
    assert where.startswith(str(root / "opt/parafoudre/venv")), where
    assert os.readlink(root / "usr/local/bin/parafoudre") == "/opt/parafoudre/venv/bin/parafoudre"

    # Config from the example, valid, private to the service's group.
    conf = root / "etc/parafoudre/parafoudre.yaml"
    cfg = load(conf)
    assert "192.168.1.5:53" in cfg.server.listen  # --root without --lan-ip keeps the example's
    assert cfg.local_zone.forward_zones == ()  # no --ad-domain: the example's DC is commented out
    assert "see /opt/parafoudre/docs/CONDITIONAL-FORWARDING.md" in conf.read_text()
    assert conf.stat().st_mode & 0o777 == 0o640
    assert (root / "etc/parafoudre/parafoudre.example.yaml").is_file()
    assert (root / "etc/parafoudre/local-blocklist.txt").is_file()
    assert (root / "var/lib/parafoudre").is_dir()
    check = run_parafoudre(root, "check-config", "-c", str(conf))
    assert check.returncode == 0, check.stderr
    assert (root / "opt/parafoudre/docs/CONDITIONAL-FORWARDING.md").is_file()

    # Units as shipped, and the commands that would have changed the live system.
    for unit in UNITS:
        installed = root / "etc/systemd/system" / unit
        assert installed.read_bytes() == (REPO / "deploy" / unit).read_bytes()
    would = (root / "var/log/parafoudre-install.log").read_text()
    assert "would run: useradd --system --user-group" in would
    assert "would run: chown root:parafoudre /etc/parafoudre/parafoudre.yaml" in would
    assert "would run: systemctl daemon-reload" in would
    assert "would run: systemctl enable parafoudre.service parafoudre-feeds.timer" in would
    assert "systemctl restart" not in would  # --no-start
    assert "systemctl start" not in would  # --no-start, --no-feeds


def test_second_run_upgrades_and_keeps_the_config(root: Path, first_install: Installed) -> None:
    conf = root / "etc/parafoudre/parafoudre.yaml"
    conf.write_text(conf.read_text() + "# edited by the operator\n")
    before = conf.read_bytes()
    out = install(root, *BASE, "--wheel", str(first_install.wheel))
    assert "kept the existing config" in out
    assert "upgrading the existing virtual environment" in out
    assert conf.read_bytes() == before
    assert run_parafoudre(root, "--version").returncode == 0
    # The entry point now names this root's venv: reinstalled, not left from the first run.
    script = (root / "opt/parafoudre/venv/bin/parafoudre").read_text()
    assert script.startswith(f"#!{root}/opt/parafoudre/venv/bin/python")


def test_uninstall_keeps_config_and_block_log(root: Path) -> None:
    conf = root / "etc/parafoudre/parafoudre.yaml"
    before = conf.read_bytes()
    blocklog = root / "var/lib/parafoudre/blocks.sqlite"
    with sqlite3.connect(blocklog) as db:
        db.execute("CREATE TABLE t (x)")
    log_bytes = blocklog.read_bytes()

    out = install(root, "--uninstall")
    assert not (root / "opt/parafoudre").exists()
    assert not (root / "usr/local/bin/parafoudre").is_symlink()
    for unit in UNITS:
        assert not (root / "etc/systemd/system" / unit).exists()
    assert conf.read_bytes() == before
    assert blocklog.read_bytes() == log_bytes
    would = (root / "var/log/parafoudre-install.log").read_text()
    assert "would run: systemctl disable --now parafoudre.service" in would
    assert "would run: userdel parafoudre" in would
    assert "/etc/parafoudre" in out and "/var/lib/parafoudre" in out


def test_new_config_for_the_lan_and_the_domain(root: Path, first_install: Installed) -> None:
    conf = root / "etc/parafoudre/parafoudre.yaml"
    conf.unlink()
    install(
        root,
        *BASE,
        "--wheel",
        str(first_install.wheel),
        "--lan-ip",
        "10.20.3.25/16",
        "--ad-domain",
        "commune.lan",
        "--dc",
        "10.20.3.2",
    )
    cfg = load(conf)
    assert cfg.server.listen == ("10.20.3.25:53", "127.0.0.1:53")
    assert "10.20.0.0/16" in cfg.acl.allow
    zones = {fz.zone: fz.servers for fz in cfg.local_zone.forward_zones}
    assert zones == {
        "commune.lan": ("10.20.3.2",),
        "_msdcs.commune.lan": ("10.20.3.2",),
        "20.10.in-addr.arpa": ("10.20.3.2",),
    }
    assert "parafoudre.commune.lan A 10.20.3.25" in cfg.local_zone.records
    assert "mairie.local" not in conf.read_text()


RESOLVED = (
    'udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=412,fd=13))\n'
    'tcp LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=412,fd=14))\n'
)
DNSMASQ = (
    'udp UNCONN 0 0 0.0.0.0:53 0.0.0.0:* users:(("dnsmasq",pid=777,fd=4))\n'
    'tcp LISTEN 0 32 0.0.0.0:53 0.0.0.0:* users:(("dnsmasq",pid=777,fd=5))\n'
)


def test_port53_resolved_stub_explained_and_fixed(
    root: Path, first_install: Installed, tmp_path: Path
) -> None:
    """The usual trap, from a recorded `ss -H -lnptu`: explained, and fixed when asked."""
    ss = tmp_path / "ss.txt"
    ss.write_text(RESOLVED)
    fake_ss = {"PARAFOUDRE_SS_FILE": str(ss)}
    # 127.0.0.53 does not collide with the example's 192.168.1.5:53 and 127.0.0.1:53.
    code, out = run_script(root, "--check-port53", extra_env=fake_ss)
    assert code == 0, out
    assert "systemd-resolved answers for this machine itself on 127.0.0.53:53" in out
    assert "no conflict" in out

    # Parafoudre on 0.0.0.0:53: resolved's stub is in the way; the two ways out are printed,
    # and a full run installs but does not start.
    conf = root / "etc/parafoudre/parafoudre.yaml"
    conf.write_text(conf.read_text().replace("192.168.1.5:53", "0.0.0.0:53"))
    code, out = run_script(root, "--check-port53", extra_env=fake_ss)
    assert code == 3, out
    assert "both cannot listen there" in out
    assert "--fix-port53" in out and "DNSStubListener=no" in out
    code, out = run_script(root, *BASE, "--wheel", str(first_install.wheel), extra_env=fake_ss)
    assert code == 3, out
    assert "installed, but not started: port 53 is taken" in out
    dropin = root / "etc/systemd/resolved.conf.d/parafoudre.conf"
    assert not dropin.exists()

    # --fix-port53 writes the drop-in and (would) restart resolved.
    code, out = run_script(root, "--check-port53", "--fix-port53", extra_env=fake_ss)
    assert code == 0, out
    assert "DNSStubListener=no" in dropin.read_text()
    would = (root / "var/log/parafoudre-install.log").read_text()
    assert "would run: systemctl restart systemd-resolved" in would

    # Uninstall removes the drop-in again.
    install(root, "--uninstall")
    assert not dropin.exists()


def test_port53_other_dns_server(root: Path, tmp_path: Path) -> None:
    ss = tmp_path / "ss.txt"
    ss.write_text(DNSMASQ)
    code, out = run_script(root, "--check-port53", extra_env={"PARAFOUDRE_SS_FILE": str(ss)})
    assert code == 3, out
    assert "dnsmasq (pid 777) already listens on 0.0.0.0:53 (TCP+UDP)" in out
    assert "Parafoudre wants 127.0.0.1:53, 192.168.1.5:53" in out
    assert "systemctl status 777" in out
    # --fix-port53 only knows systemd-resolved: still refused.
    code, out = run_script(
        root, "--check-port53", "--fix-port53", extra_env={"PARAFOUDRE_SS_FILE": str(ss)}
    )
    assert code == 3, out


def test_bad_options_and_help(tmp_path: Path) -> None:
    ok = subprocess.run(
        [BASH or "bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0 and "--uninstall" in ok.stdout and "--root" in ok.stdout
    bad = subprocess.run(
        [BASH or "bash", str(SCRIPT), "--root", str(tmp_path), "--frobnicate"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "unknown option '--frobnicate'" in bad.stderr
    half = subprocess.run(
        [BASH or "bash", str(SCRIPT), "--root", str(tmp_path), "--ad-domain", "x.lan"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert half.returncode == 2 and "--dc" in half.stderr
    missing = subprocess.run(
        [BASH or "bash", str(SCRIPT), "--root", str(tmp_path), "--check-port53"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and "not installed here" in missing.stderr


def _can_build_offline() -> bool:
    """The venv sees this environment's packages (PYTHONPATH): can they build a wheel?"""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        version = importlib.metadata.version("setuptools")
        major, minor = (int(x) for x in version.split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1)


@pytest.mark.skipif(
    not _can_build_offline(),
    reason="building from the source tree offline needs the 'wheel' package or setuptools>=70.1",
)
def test_install_from_the_source_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    had_build = (REPO / "build").exists()
    # Pure Python: compiling (setup.py, mypyc) would add a minute and a half to this test; the
    # tests' own editable install is the compiled build (tests/unit/test_compiled.py).
    install(root, *BASE, extra_env={"PARAFOUDRE_COMPILE": "0"})
    version = run_parafoudre(root, "--version")
    assert version.returncode == 0
    assert "pure Python" in version.stdout
    assert (REPO / "build").exists() == had_build  # built from a copy: the checkout stays clean
