"""Hostile YAML given to ``parafoudre check-config``: one line naming file, line and fix, exit 2.

Issue 14: a file nested 990 levels deep ended in a 2,999-line RecursionError traceback and exit 1,
and ``!!python/object/apply:...`` on a scalar was read as a plain string. The command is run as
an operator runs it: the installed ``parafoudre`` script, in its own process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resolver.config import Config
from resolver.config.loader import MAX_DEPTH, load_text

PARAFOUDRE = Path(sys.executable).parent / "parafoudre"


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    assert PARAFOUDRE.is_file(), "the package is installed (pip install -e .)"
    return subprocess.run(
        [str(PARAFOUDRE), "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], path: Path, line: int) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"parafoudre: config error: {path}:{line}:"), lines[0]
    assert "(fix: " in lines[0]
    return lines[0]


def _block_nesting(levels: int) -> str:
    return "".join(" " * i + "a:\n" for i in range(levels)) + " " * levels + "b: 1\n"


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        # 990 levels was the case; 5,000 is far past Python's recursion limit.
        ("block-990", "server:\n" + _block_nesting(990), MAX_DEPTH + 1),
        ("block-5000", _block_nesting(5000), MAX_DEPTH),
        ("flow-sequence-990", "state_dir: " + "[" * 990 + "]" * 990 + "\n", 1),
        ("flow-mapping-5000", "state_dir: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", 1),
    ],
)
def test_deep_nesting_is_one_line_and_exit_2(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    message = one_line_error(check_config(path), path, line)
    assert f"nested more than {MAX_DEPTH} levels deep" in message


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/object/apply:os.system 'touch PWNED'", "!!python/object/apply:os.system"),
        ("!!python/object/apply:os.system ['touch PWNED']", "!!python/object/apply:os.system"),
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!mairie /var/lib/parafoudre", "!mairie"),
        ("!!binary cGFyYWZvdWRyZQ==", "!!binary"),
        ("!!set {a, b}", "!!set"),
    ],
)
def test_unknown_yaml_tags_are_refused_with_line_and_fix(
    tmp_path: Path, value: str, tag: str
) -> None:
    path = tmp_path / "tagged.yaml"
    path.write_text(f"# a config\ncache:\n  size: 100\nstate_dir: {value}\n")
    message = one_line_error(check_config(path), path, 4)
    assert f"YAML tag {tag!r} is not allowed" in message
    assert not (tmp_path / "PWNED").exists()


def test_a_tag_nested_in_a_section_is_refused_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "nested-tag.yaml"
    path.write_text("dashboard:\n  thresholds:\n    rain: !!python/int 12\n")
    message = one_line_error(check_config(path), path, 3)
    assert "'!!python/int'" in message


def test_standard_tags_written_out_are_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "explicit.yaml"
    path.write_text("state_dir: !!str /var/lib/parafoudre\ncache:\n  size: !!int 100\n")
    proc = check_config(path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{path}: OK"


def test_the_deepest_real_config_is_well_under_the_bound() -> None:
    # feeds.sources[0].name is the deepest key a config has: five levels with the document.
    cfg = load_text("feeds:\n  sources:\n    - name: mairie\n      url: /srv/l.txt\n", Config)
    assert cfg.feeds.sources[0].name == "mairie"
    assert MAX_DEPTH >= 4 * 5
