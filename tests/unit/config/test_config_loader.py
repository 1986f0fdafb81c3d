"""The config loader: the embedded default, and errors that name file, line, key and fix."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from resolver.config import Config, ConfigError, default_text, load
from resolver.config.loader import load_text

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "deploy" / "parafoudre.example.yaml"


# --- the embedded default -------------------------------------------------------------------------


def test_embedded_default_loads_and_equals_the_code_defaults() -> None:
    assert load(None) == Config()


def _missing_keys(cls: type, doc: dict[str, Any], path: str = "") -> list[str]:
    missing = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{path}{f.name}"
        if f.name not in doc:
            missing.append(key)
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            assert isinstance(doc[f.name], dict), key
            missing += _missing_keys(tp, doc[f.name], key + ".")  # type: ignore[arg-type]
    return missing


def test_embedded_default_documents_every_key() -> None:
    doc = yaml.safe_load(default_text())
    assert _missing_keys(Config, doc) == []


def _unknown_keys(cls: type, doc: dict[str, Any], path: str = "") -> list[str]:
    unknown = []
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for name, value in doc.items():
        key = f"{path}{name}"
        if name not in known:
            unknown.append(key)
        elif dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
            unknown += _unknown_keys(hints[name], value, key + ".")  # type: ignore[arg-type]
    return unknown


def test_embedded_default_has_no_key_the_code_does_not_know() -> None:
    # load() would fail on the first one; this names them all.
    assert _unknown_keys(Config, yaml.safe_load(default_text())) == []


def test_unknown_key_finder_finds_nested_keys() -> None:
    doc = {"cache": {"size": 1, "sise": 2}, "colour": "blue"}
    assert _unknown_keys(Config, doc) == ["cache.sise", "colour"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file_gives_the_defaults(tmp_path: Path, text: str) -> None:
    p = tmp_path / "empty.yaml"
    p.write_text(text)
    assert load(p) == Config()


def test_empty_sections_give_their_defaults() -> None:
    assert load_text("cache:\nacl:\n", Config) == Config()


def test_a_few_values_are_read() -> None:
    cfg = load_text(
        "server:\n  listen: ['[::1]:5300', 127.0.0.1:53]\n"
        "cache:\n  size: 0\n  max_ttl: 600\n"
        "upstream:\n  timeout: 2\n"
        "local_zone:\n  private_reverse: no\n"
        "allowlist:\n  names: [Impots.Gouv.FR.]\n",
        Config,
    )
    assert cfg.server.listen == ("[::1]:5300", "127.0.0.1:53")
    assert (cfg.cache.size, cfg.cache.max_ttl) == (0, 600)
    assert cfg.upstream.timeout == 2.0 and isinstance(cfg.upstream.timeout, float)
    assert cfg.local_zone.private_reverse is False
    assert cfg.allowlist.names == ("impots.gouv.fr",)  # normalised


# --- errors ---------------------------------------------------------------------------------------


BAD = [
    # (yaml, line, key, words of the message, words of the fix)
    pytest.param(
        "cahce:\n  size: 5\n",
        1,
        "cahce",
        "unknown key",
        "did you mean 'cache'?",
        id="unknown-top-key",
    ),
    pytest.param(
        "cache:\n  size: 5\n  sise: 3\n",
        3,
        "cache.sise",
        "unknown key",
        "did you mean 'size'?",
        id="unknown-nested-key",
    ),
    pytest.param(
        "cache:\n  zzzzqqq: 1\n",
        2,
        "cache.zzzzqqq",
        "unknown key",
        "known keys: size, min_ttl, max_ttl",
        id="unknown-key-no-close-match",
    ),
    pytest.param(
        "cache:\n  size: 1\n  size: 2\n",
        3,
        "cache.size",
        "key given twice",
        "keep one",
        id="key-twice",
    ),
    pytest.param(
        "upstream:\n  servers: 9.9.9.9\n",
        2,
        "upstream.servers",
        "expected a list, got '9.9.9.9'",
        "one item per line",
        id="scalar-for-list",
    ),
    pytest.param(
        "blocking:\n  mode: nxdomian\n",
        2,
        "blocking.mode",
        "'nxdomian' is not one of",
        "did you mean 'nxdomain'?",
        id="enum-typo",
    ),
    pytest.param(
        "logging:\n  level: verbose\n",
        2,
        "logging.level",
        "is not one of",
        "use debug | info | warning | error",
        id="enum-no-close-match",
    ),
    pytest.param(
        "blocking:\n  mode: sinkhole\n  sinkhole_ipv4: 192.168.1.300\n",
        3,
        "blocking.sinkhole_ipv4",
        "is not an IPv4 address",
        "192.168.1.250",
        id="bad-ipv4",
    ),
    pytest.param(
        "blocking:\n  mode: sinkhole\n  sinkhole_ipv6: 192.168.1.1\n",
        3,
        "blocking.sinkhole_ipv6",
        "is not an IPv6 address",
        "fd00::250",
        id="bad-ipv6",
    ),
    pytest.param(
        "acl:\n  allow: [10.0.0.0/33]\n",
        2,
        "acl.allow[0]",
        "'10.0.0.0/33' is not a network",
        "192.168.0.0/16",
        id="bad-network",
    ),
    pytest.param(
        "upstream:\n  servers: [dns.quad9.net]\n",
        2,
        "upstream.servers[0]",
        "is not an IP address",
        "such as 192.168.1.2",
        id="hostname-upstream",
    ),
    pytest.param(
        "upstream:\n  servers: ['9.9.9.9:99999']\n",
        2,
        "upstream.servers[0]",
        "bad port",
        "1 to 65535",
        id="bad-port",
    ),
    pytest.param(
        "upstream:\n  servers: ['9.9.9.9:dns']\n",
        2,
        "upstream.servers[0]",
        "bad port",
        "1 to 65535",
        id="port-not-a-number",
    ),
    pytest.param(
        "server:\n  listen: ['[::1:53']\n",
        2,
        "server.listen[0]",
        "missing ']'",
        "[2001:db8::1]:53",
        id="ipv6-without-bracket",
    ),
    pytest.param(
        "server:\n  listen: []\n",
        2,
        "server.listen",
        "no listen address",
        "127.0.0.1:5353",
        id="no-listen",
    ),
    pytest.param(
        "upstream:\n  servers: []\n",
        2,
        "upstream.servers",
        "no upstream server",
        "9.9.9.9",
        id="no-upstream",
    ),
    pytest.param(
        "blocking:\n  mode: sinkhole\n",
        2,
        "blocking",
        "mode sinkhole needs an address",
        "blocking.sinkhole_ipv4",
        id="sinkhole-no-address",
    ),
    pytest.param(
        "cache:\n  min_ttl: 600\n  max_ttl: 60\n",
        2,
        "cache",
        "min_ttl is above max_ttl",
        "cache.min_ttl <= cache.max_ttl",
        id="min-above-max",
    ),
    pytest.param(
        "cache:\n  size: -1\n",
        2,
        "cache.size",
        "below the minimum 0",
        "use 0 or more",
        id="negative-size",
    ),
    pytest.param(
        "upstream:\n  timeout: 0\n",
        2,
        "upstream.timeout",
        "must be greater than 0",
        "positive",
        id="zero-timeout",
    ),
    pytest.param(
        "local_zone:\n  records:\n    - 'nas.mairie.local A not-an-ip'\n",
        3,
        "local_zone.records[0]",
        "'not-an-ip' is not an IPv4 address",
        "'nas.mairie.local A 192.168.1.10'",
        id="bad-local-record",
    ),
    pytest.param(
        "local_zone:\n  forward_zones:\n    - servers: [192.168.1.2]\n",
        3,
        "local_zone.forward_zones[0].zone",
        "required key missing",
        "add 'zone:'",
        id="forward-zone-without-zone",
    ),
    pytest.param(
        "local_zone:\n  forward_zones:\n    - zone: 'a b'\n      servers: [1.2.3.4]\n",
        3,
        "local_zone.forward_zones[0].zone",
        "is not a domain name",
        "mairie.local",
        id="forward-zone-bad-name",
    ),
    pytest.param(
        "blocking:\n  lists:\n    - name: mine\n",
        3,
        "blocking.lists[0].path",
        "required key missing",
        "add 'path:'",
        id="list-without-path",
    ),
    pytest.param(
        "blocking:\n  lists:\n    - path: /x\n      match: prefix\n",
        4,
        "blocking.lists[0].match",
        "is not one of",
        "use subtree | exact",
        id="list-bad-match",
    ),
    pytest.param(
        "state_dir:\n",
        1,
        "state_dir",
        "expected a string, got nothing",
        "remove the key",
        id="null-string",
    ),
    pytest.param(
        "\n\ncache:\n  size: [1\n",
        5,
        "",
        "not valid YAML",
        "indentation and quoting",
        id="invalid-yaml",
    ),
    pytest.param(
        "cache:\n  size: 1\n   bad: 2\n",
        3,
        "",
        "not valid YAML",
        "indentation and quoting",
        id="bad-indentation",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "message", "fix"), BAD)
def test_bad_config_names_file_line_key_and_fix(
    tmp_path: Path, text: str, line: int, key: str, message: str, fix: str
) -> None:
    p = tmp_path / "parafoudre.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(p)
    err = info.value
    assert (err.file, err.line, err.key) == (str(p), line, key)
    assert message in err.message
    assert fix in err.hint
    text_form = str(err)
    assert text_form.startswith(f"{p}:{line}: ")
    assert (f" {key}: " in text_form) if key else True
    assert message in text_form
    assert text_form.endswith(f"(fix: {err.hint})")
    assert "\n" not in text_form  # the CLI prints one line


TYPE_ERRORS = [
    pytest.param("cache:\n  size: lots\n", 2, "cache.size", "expected a whole number", id="int"),
    pytest.param(
        "cache:\n  size: 1.5\n", 2, "cache.size", "expected a whole number", id="float-int"
    ),
    pytest.param(
        "cache:\n  size: true\n", 2, "cache.size", "expected a whole number", id="bool-int"
    ),
    pytest.param(
        "upstream:\n  timeout: soon\n", 2, "upstream.timeout", "expected a number", id="float"
    ),
    pytest.param(
        "local_zone:\n  private_reverse: maybe\n",
        2,
        "local_zone.private_reverse",
        "expected true or false",
        id="bool",
    ),
    pytest.param("cache: 5\n", 1, "cache", "expected a section", id="scalar-for-section"),
    pytest.param(
        "acl:\n  allow:\n    a: b\n", 3, "acl.allow", "expected a list", id="map-for-list"
    ),
    pytest.param("- a\n- b\n", 1, "", "expected a section", id="top-level-list"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), TYPE_ERRORS)
def test_type_errors_name_file_line_and_key(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(text, Config, "t.yaml")
    err = info.value
    assert (err.file, err.line, err.key) == ("t.yaml", line, key)
    assert message in err.message
    assert str(err).startswith(f"t.yaml:{line}:")


@pytest.mark.parametrize(("text", "line", "key", "message"), TYPE_ERRORS[:5])
def test_type_errors_name_a_fix(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(text, Config, "t.yaml")
    assert info.value.hint
    assert "(fix: " in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "acl:\n  allow:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n",
        "local_zone:\n  records:\n    - 'nas.mairie.local A 192.168.1.10'\n"
        "    - 'pc.mairie.local A nope'\n",
        "upstream:\n  servers:\n    - 9.9.9.9\n    - dns.quad9.net\n",
    ],
)
def test_bad_list_item_is_reported_on_its_own_line(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(text, Config, "t.yaml")
    assert info.value.line == 4


def test_forward_zone_without_servers_is_refused() -> None:
    with pytest.raises(ConfigError):
        load_text("local_zone:\n  forward_zones:\n    - zone: mairie.local\n", Config, "t.yaml")


def test_upstream_port_zero_is_refused() -> None:
    with pytest.raises(ConfigError):
        load_text("upstream:\n  servers: ['9.9.9.9:0']\n", Config, "t.yaml")


def test_listen_port_zero_is_accepted() -> None:
    assert load_text("server:\n  listen: ['127.0.0.1:0']\n", Config).server.listen == (
        "127.0.0.1:0",
    )


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load(p)
    err = info.value
    assert (err.file, err.line, err.key) == (str(p), 0, "")
    assert "cannot read the file" in err.message
    assert str(err) == f"{p}: {err.message} (fix: check the path given with -c)"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load(tmp_path)


def test_file_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "latin1.yaml"
    p.write_bytes("state_dir: /var/lib/été\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load(p)
    assert "not UTF-8" in info.value.message and info.value.hint == "save the file as UTF-8"


@pytest.mark.parametrize("args", ["['true']", "'true'"])
def test_python_tags_are_refused_not_executed_nor_read_as_text(args: str) -> None:
    text = f"state_dir: !!python/object/apply:os.system {args}\n"
    with pytest.raises(ConfigError) as info:
        load_text(text, Config, "t.yaml")
    assert (info.value.line, info.value.key) == (1, "")
    assert "'!!python/object/apply:os.system' is not allowed" in info.value.message


def test_config_error_str_without_line_or_key() -> None:
    assert str(ConfigError("f.yaml", 0, "", "boom")) == "f.yaml: boom"
    assert str(ConfigError("f.yaml", 3, "a.b", "boom", "do x")) == "f.yaml:3: a.b: boom (fix: do x)"


# --- the example shipped in deploy/ ---------------------------------------------------------------


def test_deploy_example_is_a_town_hall_box() -> None:
    """What the example teaches: port 53 on the LAN, encrypted upstreams, the Windows domain."""
    cfg = load(EXAMPLE)
    assert any(a.endswith(":53") and not a.startswith("127.") for a in cfg.server.listen)
    assert cfg.upstream.servers and all(
        s.startswith(("tls://", "https://")) for s in cfg.upstream.servers
    )
    assert "192.168.1.0/24" in cfg.acl.allow and "0.0.0.0/0" not in cfg.acl.allow
    zones = {z.zone: z.servers for z in cfg.local_zone.forward_zones}
    assert zones.keys() >= {"mairie.local", "_msdcs.mairie.local", "1.168.192.in-addr.arpa"}
    assert all(zones.values()), "every forward zone names its servers"


def test_yaml_booleans_are_words_for_choices() -> None:
    # YAML 1.1 reads `off` as false; an operator writing `mode: off` means the word.
    cfg = load_text("exfiltration:\n  mode: off\n", Config)
    assert cfg.exfiltration.mode == "off"
