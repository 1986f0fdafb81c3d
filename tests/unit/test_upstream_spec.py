"""upstream.servers entries: plain DNS, DNS over TLS (tls://), DNS over HTTPS (https://)."""

from __future__ import annotations

import pytest

from resolver.config.upstream_spec import UpstreamSpec, parse_upstream

Q9 = "dns.quad9.net"
DOH = "https://dns.quad9.net/dns-query"


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        # plain, as before
        ("9.9.9.9", UpstreamSpec("udp", "9.9.9.9", 53)),
        ("9.9.9.9:53", UpstreamSpec("udp", "9.9.9.9", 53)),
        ("  192.168.1.2:5353 ", UpstreamSpec("udp", "192.168.1.2", 5353)),
        ("2620:fe::fe", UpstreamSpec("udp", "2620:fe::fe", 53)),
        ("[2620:fe::fe]", UpstreamSpec("udp", "2620:fe::fe", 53)),
        ("[2620:fe::fe]:53", UpstreamSpec("udp", "2620:fe::fe", 53)),
        ("[2620:00FE:0::FE]:5300", UpstreamSpec("udp", "2620:fe::fe", 5300)),  # normalised
        # DNS over TLS
        ("tls://9.9.9.9#dns.quad9.net", UpstreamSpec("tls", "9.9.9.9", 853, server_name=Q9)),
        ("TLS://9.9.9.9#DNS.Quad9.NET.", UpstreamSpec("tls", "9.9.9.9", 853, server_name=Q9)),
        ("tls://9.9.9.9:8853#dns.quad9.net", UpstreamSpec("tls", "9.9.9.9", 8853, server_name=Q9)),
        (
            "tls://[2620:fe::fe]:853#dns.quad9.net",
            UpstreamSpec("tls", "2620:fe::fe", 853, server_name=Q9),
        ),
        (
            "tls://[2620:fe::fe]#dns.quad9.net",
            UpstreamSpec("tls", "2620:fe::fe", 853, server_name=Q9),
        ),
        ("tls://1.1.1.2#1.1.1.2", UpstreamSpec("tls", "1.1.1.2", 853, server_name="1.1.1.2")),
        (
            "tls://1.1.1.2#security.cloudflare-dns.com",
            UpstreamSpec("tls", "1.1.1.2", 853, server_name="security.cloudflare-dns.com"),
        ),
        # DNS over HTTPS
        (DOH, UpstreamSpec("https", Q9, 443, server_name=Q9, url=DOH)),
        (
            f"{DOH}#9.9.9.9",
            UpstreamSpec("https", Q9, 443, server_name=Q9, url=DOH, address="9.9.9.9"),
        ),
        (
            f"{DOH}#[2620:fe::fe]",
            UpstreamSpec("https", Q9, 443, server_name=Q9, url=DOH, address="2620:fe::fe"),
        ),
        (
            f"{DOH}#2620:fe::fe",
            UpstreamSpec("https", Q9, 443, server_name=Q9, url=DOH, address="2620:fe::fe"),
        ),
        (
            "HTTPS://DNS.Quad9.net:8443/dns-query?x=1#9.9.9.9",
            UpstreamSpec(
                "https",
                Q9,
                8443,
                server_name=Q9,
                url="https://dns.quad9.net:8443/dns-query?x=1",
                address="9.9.9.9",
            ),
        ),
        (
            "https://1.1.1.2/dns-query",
            UpstreamSpec(
                "https", "1.1.1.2", 443, server_name="1.1.1.2", url="https://1.1.1.2/dns-query"
            ),
        ),
    ],
)
def test_parse_upstream(text: str, spec: UpstreamSpec) -> None:
    assert parse_upstream(text) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty upstream server"),
        ("dns.quad9.net", "is not an IP address"),
        ("9.9.9.9:0", "port 0"),
        ("9.9.9.9:99999", "bad port"),
        ("9.9.9.9:x", "bad port"),
        ("[2620:fe::fe", "missing ']'"),
        ("[2620:fe::fe]53", "expected ':port'"),
        ("tls://9.9.9.9", "missing the certificate name"),
        ("tls://9.9.9.9#", "missing the certificate name"),
        ("tls://dns.quad9.net#dns.quad9.net", "is not an IP address"),
        ("tls://9.9.9.9:0#dns.quad9.net", "port 0"),
        ("tls://9.9.9.9#bad name", "is not a host name"),
        ("tls://9.9.9.9#-bad.test", "is not a host name"),
        ("tls://9.9.9.9#" + "a" * 64 + ".test", "is not a host name"),
        ("tls://9.9.9.9/dns-query#dns.quad9.net", "no path"),
        ("https://dns.quad9.net", "no path"),
        ("https://dns.quad9.net/", "no path"),
        ("https:///dns-query", "no host"),
        ("https://dns.quad9.net:99999/dns-query", "not a valid URL"),
        ("https://dns.quad9.net:0/dns-query", "port 0"),
        ("https://user:pw@dns.quad9.net/dns-query", "no user or password"),
        ("https://dns.quad9.net/dns-query#dns9.quad9.net", "is not an IP address"),
        ("https://dns.quad9.net/dns-query#", "nothing after '#'"),
        ("https://bad_host!/dns-query", "is not a host name"),
        ("http://dns.quad9.net/dns-query", "in clear"),
        ("quic://9.9.9.9#dns.quad9.net", "unknown scheme"),
    ],
)
def test_parse_upstream_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_upstream(text)
    text_of = str(err.value)
    assert message in text_of.split("|")[0]
    assert text_of.count("|") == 1  # "message|hint", as the config loader expects
    assert text_of.split("|")[1]


@pytest.mark.parametrize(
    "text",
    [
        "9.9.9.9:53",
        "[2620:fe::fe]:53",
        "tls://9.9.9.9:853#dns.quad9.net",
        "tls://[2620:fe::fe]:853#dns.quad9.net",
        DOH,
        f"{DOH}#9.9.9.9",
    ],
)
def test_str_round_trips(text: str) -> None:
    spec = parse_upstream(text)
    assert str(spec) == text
    assert parse_upstream(str(spec)) == spec
