"""Registered domains from the Public Suffix List (ICANN and private sections, offline).

The private section matters: ``x.duckdns.org`` and ``y.duckdns.org`` belong to two customers, so
a tunnel on one never borrows the other's history, and a big shared suffix is never one target.
"""

from __future__ import annotations

from publicsuffixlist import PublicSuffixList

# The longest rules of the list have 5 labels (s3.dualstack.<region>.amazonaws.com); a
# registered domain is one label more. Looking only at the last labels keeps the cost of a
# 20-label tunnel name at that of a short one.
_TAIL_LABELS = 7


class RegisteredDomains:
    """Splits a query name into the part left of its registered domain and that domain."""

    __slots__ = ("_psl", "_tlds")

    def __init__(self, psl: PublicSuffixList | None = None) -> None:
        # The package's bundled copy of the list: no download at start or ever.
        self._psl = psl if psl is not None else PublicSuffixList(only_icann=False)
        # Top-level domains found in the list so far: ~1,500 at most, one set lookup per query.
        self._tlds: set[str] = set()

    def tld_exists(self, qname: str) -> bool:
        """Whether the last label of ``qname`` is a top-level domain of the list.

        A name under a TLD that does not exist cannot resolve on the Internet: dnscat2's direct
        mode (``dnscat.<hex>``) sends such names, its last label being data as well.
        """
        tld = qname[qname.rfind(".") + 1 :]
        if tld in self._tlds:
            return True
        if self._psl.publicsuffix(tld, accept_unknown=False) is None:
            return False  # unknown ones are not remembered: a flood of them cannot grow this
        self._tlds.add(tld)
        return True

    def split(self, qname: str) -> tuple[str, str] | None:
        """(prefix, registered domain); None when the name is a public suffix or a single label.

        ``qname`` is ``Query.qname``: lower case, no trailing dot, odd bytes as \\DDD (an escaped
        byte never contains a dot, so splitting on dots is exact).
        """
        parts = qname.rsplit(".", _TAIL_LABELS)
        tail = qname if len(parts) <= _TAIL_LABELS else qname[len(parts[0]) + 1 :]
        base = self._psl.privatesuffix(tail)
        if base is None:
            return None
        if len(base) == len(tail) and tail is not qname:
            base = self._psl.privatesuffix(qname)  # a rule deeper than we guessed
            if base is None:
                return None
        if len(base) == len(qname):
            return "", base
        return qname[: len(qname) - len(base) - 1], base
