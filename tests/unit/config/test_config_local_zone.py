"""``local_zone.records``: the config's stdlib check agrees with the stage's dnslib parser.

The config refuses a bad record at start, with its line (it must not import dnslib: the config
is leaves only, see tests/test_conventions.py); the stage then builds the wire form from the same
text. Every record the config accepts must build, to the name and type the operator wrote.
"""

from __future__ import annotations

import pytest

from resolver.config import Config, ConfigError
from resolver.config.loader import load_text
from resolver.config.local_zone import check_record
from resolver.stages.local_zone import parse_record

ACCEPTED = [
    ("nas.mairie.local A 192.168.1.10", "nas.mairie.local", 1, 300),
    ("NAS.Mairie.Local. 120 IN A 192.168.1.10", "nas.mairie.local", 1, 120),
    ("nas.mairie.local IN A 192.168.1.10", "nas.mairie.local", 1, 300),
    ("nas.mairie.local 60 AAAA fd00::10", "nas.mairie.local", 28, 60),
    ("intranet.mairie.local CNAME nas.mairie.local.", "intranet.mairie.local", 5, 300),
    ("10.1.168.192.in-addr.arpa PTR nas.mairie.local", "10.1.168.192.in-addr.arpa", 12, 300),
    ("mairie.local MX 10 mail.mairie.local", "mairie.local", 15, 300),
    ("_ldap._tcp.mairie.local SRV 0 100 389 dc1.mairie.local", "_ldap._tcp.mairie.local", 33, 300),
    ('mairie.local TXT "v=spf1 -all"', "mairie.local", 16, 300),
    ('mairie.local TXT "part one" "part;two" bare', "mairie.local", 16, 300),
    ("sub.mairie.local NS dc1.mairie.local", "sub.mairie.local", 2, 300),
    ("nas A 192.168.1.10", "nas", 1, 300),
]


@pytest.mark.parametrize(("text", "name", "rtype", "ttl"), ACCEPTED)
def test_every_accepted_record_builds_as_written(
    text: str, name: str, rtype: int, ttl: int
) -> None:
    assert check_record(text) == text
    record = parse_record(text)
    assert (record.name, record.rtype, record.ttl) == (name, rtype, ttl)


REFUSED = [
    ("nas.mairie.local A not-an-ip", "is not an IPv4 address"),
    ("nas.mairie.local A 192.168.1.10 192.168.1.11", "expected one IPv4 address"),
    ("nas.mairie.local A 01.2.3.4", "is not an IPv4 address"),
    ("nas.mairie.local AAAA 192.168.1.10", "is not an IPv6 address"),
    ("@ A 192.168.1.10", "is not a host name"),  # dnslib would make the name ""
    ("*.mairie.local A 192.168.1.10", "wildcards are not answered"),
    ("nas.mairie.local 300 CH A 192.168.1.10", "'CH' is not a record type"),
    ("nas.mairie.local a 192.168.1.10", "'a' is not a record type"),
    ("nas.mairie.local HINFO pc linux", "'HINFO' is not a record type"),
    ("nas.mairie.local A", "expected a name, a type and a value"),
    ("nas.mairie.local 300 A", "expected a type and a value"),
    ("nas..mairie.local A 192.168.1.10", "is not a host name"),
    ("nas.mairie.local 4294967296 A 192.168.1.10", "TTL 4294967296 is above"),
    ("mairie.local MX mail.mairie.local", "MX takes a preference and a name"),
    ("mairie.local MX 70000 mail.mairie.local", "preference '70000'"),
    ("_ldap._tcp.mairie.local SRV 0 100 dc1.mairie.local", "SRV takes priority"),
    ("intranet.mairie.local CNAME a b", "expected one name"),
    ('mairie.local TXT "unclosed', "TXT text is not one or more strings"),
    ("mairie.local TXT " + "x" * 256, "over 255 bytes"),
    ("mairie.local TXT ;comment", "TXT text is not one or more strings"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_bad_records_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="\\|") as info:
        check_record(text)
    assert message in str(info.value).partition("|")[0]


def test_a_bad_record_is_reported_on_its_own_line() -> None:
    text = "local_zone:\n  records:\n    - nas.mairie.local A 192.168.1.10\n    - pc A 1.2.3\n"
    with pytest.raises(ConfigError) as info:
        load_text(text, Config, "t.yaml")
    assert (info.value.line, info.value.key) == (4, "local_zone.records[1]")
    assert "e.g. 'nas.mairie.local A 192.168.1.10'" in info.value.hint
