"""What may be shown or sent of a name the exfiltration detector blocked: never the payload.

An exfiltration block's query name *is* the stolen data (a base32 address, an IBAN, a password),
so it must not travel further than the box's own block log:

* the observatory receives the registered domain only (with the signals and counts), see
  ``resolver/observatory_push/outbox.py``;
* the dashboard's page and API show the registered domain and a short prefix by default, enough
  to recognise a tunnel tool's shape (``dnscat.``, ``post.``) but not to rebuild the data.

Names under a top-level domain that does not exist (dnscat2's direct mode sends ``dnscat.<hex>``,
its last label is data too) have no registered domain: ``UNKNOWN_TLD`` stands in for it.
"""

from __future__ import annotations

import functools
from typing import Final

from publicsuffixlist import PublicSuffixList

UNKNOWN_TLD: Final = "(unknown-tld)"
# Characters of the part left of the registered domain kept on the page: a tool's marker
# ("dnscat", "post.1f", "init.") fits, at most 8 characters of data leak to the screen.
SHOWN_PREFIX: Final = 8
ELLIPSIS: Final = "\u2026"


def is_exfiltration(verdict: str, reason: str) -> bool:
    """Whether a block log row is the detector's (the dashboard's rule, resolver/core/steps.py)."""
    return verdict == "exfiltration" or reason.startswith("exfil:")


class NameRedactor:
    """Registered domains under the Public Suffix List, unknown top-level domains refused."""

    __slots__ = ("_psl",)

    def __init__(self, psl: PublicSuffixList | None = None) -> None:
        self._psl = psl if psl is not None else PublicSuffixList(only_icann=False)

    def registered(self, qname: str) -> str:
        """The registered domain of ``qname``, or UNKNOWN_TLD; a public suffix stays itself."""
        name = qname.rstrip(".").lower()
        base = self._psl.privatesuffix(name, accept_unknown=False)
        if base is not None:
            return str(base)
        if self._psl.publicsuffix(name, accept_unknown=False) == name:
            return name  # "com", "co.uk": nothing left of them to hide
        return UNKNOWN_TLD

    def shown(self, qname: str) -> str:
        """``qname`` cut to a short prefix, an ellipsis and its registered domain."""
        name = qname.rstrip(".")
        base = self.registered(name)
        if base == UNKNOWN_TLD:
            head = name[:SHOWN_PREFIX]
            return f"{head}{ELLIPSIS}{base}" if len(name) > SHOWN_PREFIX else name
        prefix = name[: max(len(name) - len(base) - 1, 0)]
        if len(prefix) <= SHOWN_PREFIX:
            return name
        return f"{prefix[:SHOWN_PREFIX]}{ELLIPSIS}.{base}"

    def row_name(self, qname: str, verdict: str, reason: str, *, full: bool = False) -> str:
        """The name to show for a block log row: cut for the detector's blocks unless ``full``."""
        if full or not is_exfiltration(verdict, reason):
            return qname
        return self.shown(qname)


@functools.cache
def default_redactor() -> NameRedactor:
    """One redactor per process (reading the bundled list takes ~40 ms); read-only after."""
    return NameRedactor()
