"""The registered domain campaigns are grouped by: ``a.evil-bank.fr`` and ``b.evil-bank.fr`` are
one campaign, whatever list blocked them in each commune.
"""

from __future__ import annotations

from resolver.exfil.redact import UNKNOWN_TLD, default_redactor


def campaign_domain(qname: str) -> str:
    """The registered domain of ``qname`` under the Public Suffix List; under a top-level domain
    the list does not know (``.test``, ``.lan``), its last two labels.
    """
    name = qname.rstrip(".").lower()
    found = default_redactor().registered(name)
    if found != UNKNOWN_TLD:
        return found
    return ".".join(name.rsplit(".", 2)[-2:])
