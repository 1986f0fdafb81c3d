"""How `feeds update` names a failure: a class and a few plain words, never a library's text."""

from __future__ import annotations

import errno
import socket
import ssl

import aiohttp
from aiohttp.client_reqrep import ConnectionKey

from feeds.download import DIAGNOSES, NetworkWatch, classify, diagnosis

URL = "https://urlhaus.abuse.ch/downloads/hostfile/"
KEY = ConnectionKey("urlhaus.abuse.ch", 443, True, True, None, None, None)


def connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(KEY, os_error)


def test_classes() -> None:
    gai = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert classify(connector_error(gai), URL) == (
        "dns",
        "cannot resolve urlhaus.abuse.ch (Temporary failure in name resolution)",
    )
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert classify(connector_error(refused), URL) == (
        "refused",
        "urlhaus.abuse.ch port 443 refused the connection",
    )
    unreachable = OSError(errno.ENETUNREACH, "Network is unreachable")
    assert classify(connector_error(unreachable), URL) == (
        "route",
        "no route to urlhaus.abuse.ch (Network is unreachable)",
    )
    assert classify(TimeoutError(), URL) == ("timeout", "urlhaus.abuse.ch did not answer in time")
    bad_cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cls, words = classify(aiohttp.ClientConnectorCertificateError(KEY, bad_cert), URL)
    assert cls == "tls" and words.startswith("the certificate of urlhaus.abuse.ch is not valid")
    cls, words = classify(aiohttp.ServerDisconnectedError(), URL)
    assert cls == "other" and "closed the connection" in words
    for exc in (gai, refused, unreachable):
        assert "ClientConnector" not in classify(connector_error(exc), URL)[1]


def test_one_diagnosis_the_most_telling_class_first() -> None:
    assert diagnosis(["refused", "dns"]) == DIAGNOSES["dns"]
    assert diagnosis(["http", "timeout"]) == DIAGNOSES["timeout"]
    assert diagnosis([]) == DIAGNOSES["other"]
    assert "check its DNS and gateway" in DIAGNOSES["dns"]


def test_network_absent_only_while_no_server_answered() -> None:
    watch = NetworkWatch()
    assert not watch.absent
    watch.failures.append("refused")  # one server refused: the network is there
    assert not watch.absent
    watch.failures.append("dns")
    assert watch.absent and watch.absent_class() == "dns"
    watch.answered = True  # another feed's server answered: a dead name, not a dead network
    assert not watch.absent
