"""The page's words for what the block log stores as codes: reasons, query types, failures."""

from __future__ import annotations

from dashboard import i18n


def test_reasons_in_words() -> None:
    fr = i18n.reason_text
    assert fr("fr", "feed:urlhaus") == "liste de menaces urlhaus"
    assert fr("fr", "list:mairie") == "liste de la mairie mairie"
    assert fr("fr", "exfil:names") == "fuite de données par DNS : noms trop variés"
    assert fr("fr", "exfil:cooldown,names,volume") == (
        "fuite de données par DNS : noms trop variés, trop de données dans les noms"
        " (domaine mis en quarantaine)"
    )
    assert (
        fr("fr", "feed:urlhaus cname:cdn.bad.example") == "liste de menaces urlhaus, par un alias"
    )
    assert fr("en", "exfil:qtype,rate") == (
        "data leak through DNS: tunnel query types, burst of different names"
    )
    # Unknown codes are shown as they are, never dropped.
    assert fr("fr", "acl") == "acl"
    assert fr("fr", "exfil:newsignal") == "fuite de données par DNS : newsignal"


def test_query_types() -> None:
    assert [i18n.qtype_name(t) for t in (1, 28, 16, 65, 10)] == [
        "A",
        "AAAA",
        "TXT",
        "HTTPS",
        "NULL",
    ]
    assert i18n.qtype_name(4242) == "TYPE4242"  # RFC 3597


def test_failure_classes_in_both_languages() -> None:
    for cls in ("dns", "route", "refused", "tls", "http", "timeout", "other"):
        assert i18n.netfail_text("fr", cls) and i18n.netfail_text("en", cls)
    assert i18n.netfail_text("fr", "dns") == (
        "ce boîtier ne résout pas les noms publics : vérifiez son DNS et sa passerelle"
    )
    assert i18n.netfail_text("en", "unheard-of") == i18n.netfail_text("en", "other")


def test_block_counts() -> None:
    assert [i18n.blocks_count("fr", n) for n in (0, 1, 3)] == [
        "aucun blocage",
        "1 blocage",
        "3 blocages",
    ]
    assert i18n.blocks_count("en", 2) == "2 blocks"
