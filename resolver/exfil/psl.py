"""Registered domains from the Public Suffix List (ICANN and private sections, offline).

The private section matters: ``x.duckdns.org`` and ``y.duckdns.org`` belong to two customers, so
a tunnel on one never borrows the other's history, and a big shared suffix is never one target.

Every query the detectors judge needs its registered domain, and the library's lookup costs
3 to 6 µs (it lowers, splits, then joins and tests every suffix of up to 8 labels). The answer
only depends on the longest suffix of the name that some rule ends with, and on whether labels
stand left of it (the library's wildcard rule ``*.ck`` makes ``a.b.ck`` public down to ``b.ck``
but ``b.ck`` itself its own root): that pair is remembered, so a new name under a known domain
costs a few set lookups. There are at most as many such pairs as the list has suffixes: no
traffic can grow the memo.
"""

from __future__ import annotations

from collections.abc import Iterable

from publicsuffixlist import PublicSuffixList

# The longest rules of the list have 7 labels (*.airflow.cn-north-1.on.amazonwebservices.com.cn);
# a registered domain is one label more. Looking only at the last labels keeps the cost of a
# 20-label tunnel name at that of a short one.
_TAIL_LABELS = 7
# Unknown top-level domains remembered as such (.lan, .home, .internal, a tunnel's data label):
# a flood of random ones fills this once, then they are looked up each time as before.
_MAX_UNKNOWN_TLDS = 4096


def _rule_suffixes(psl: PublicSuffixList) -> frozenset[str] | None:
    """Every label suffix of every rule, as the library tests them (``!x``, ``*.x`` and ``x``
    for each suffix ``x`` of a name), or None if the library keeps its rules elsewhere than in
    this version (then every lookup goes to the library, uncached: slower, never wrong)."""
    rules = getattr(psl, "_publicsuffix", None)
    if not isinstance(rules, (set, frozenset)):
        return None
    out: set[str] = set()
    for rule in rules:
        if not isinstance(rule, str):
            return None
        # "!www.ck" is tested as the exception of "www.ck" and, literally, as a name.
        for text in (rule, rule[1:]) if rule.startswith("!") else (rule,):
            out.update(_suffixes(text.split(".")))
    return frozenset(out)


def _suffixes(labels: list[str]) -> Iterable[str]:
    return (".".join(labels[i:]) for i in range(len(labels)))


class RegisteredDomains:
    """Splits a query name into the part left of its registered domain and that domain."""

    __slots__ = ("_inner", "_psl", "_rules", "_tlds", "_unknown", "_whole")

    def __init__(self, psl: PublicSuffixList | None = None) -> None:
        # The package's bundled copy of the list: no download at start or ever.
        self._psl = psl if psl is not None else PublicSuffixList(only_icann=False)
        # Top-level domains found in the list so far: ~1,500 at most, one set lookup per query.
        self._tlds: set[str] = set()
        self._unknown: set[str] = set()
        self._rules = _rule_suffixes(self._psl)
        # The longest rule suffix of a name -> the library's count of public labels for it, when
        # labels stand left of that suffix (``_inner``) or when it is the whole name (``_whole``).
        self._inner: dict[str, int] = {}
        self._whole: dict[str, int] = {}

    def tld_exists(self, qname: str) -> bool:
        """Whether the last label of ``qname`` is a top-level domain of the list.

        A name under a TLD that does not exist cannot resolve on the Internet: dnscat2's direct
        mode (``dnscat.<hex>``) sends such names, its last label being data as well.
        """
        tld = qname[qname.rfind(".") + 1 :]
        if tld in self._tlds:
            return True
        unknown = self._unknown
        if tld in unknown:
            return False
        if self._psl.publicsuffix(tld, accept_unknown=False) is None:
            if len(unknown) < _MAX_UNKNOWN_TLDS:
                unknown.add(tld)
            return False
        self._tlds.add(tld)
        return True

    def split(self, qname: str) -> tuple[str, str] | None:
        """(prefix, registered domain); None when the name is a public suffix or a single label.

        ``qname`` is ``Query.qname``: lower case, no trailing dot, odd bytes as \\DDD (an escaped
        byte never contains a dot, so splitting on dots is exact). The same answer as the
        library's ``privatesuffix`` on the last ``_TAIL_LABELS`` labels (``_split_library``).
        """
        rules = self._rules
        if (
            rules is None
            or not qname.islower()
            or qname[:1] == "."
            or qname[-1:] == "."
            or ".." in qname
        ):
            # No rules to read, upper case, empty labels: never a detector's name.
            return self._split_library(qname)
        # The longest suffix some rule ends with: no rule can match beyond it.
        known = ""
        depth = 0
        dot = qname.rfind(".")
        while True:
            suffix = qname[dot + 1 :]
            if suffix not in rules:
                break
            known = suffix
            depth += 1
            if dot < 0:
                break
            dot = qname.rfind(".", 0, dot)
        labels = qname.count(".") + 1
        if labels > _TAIL_LABELS:
            return self._split_deep(qname, known, depth, labels)
        memo = self._inner if depth < labels else self._whole  # ``_public``, inline
        public = memo.get(known)
        if public is None:
            public = self._public(qname, known, depth < labels)
        if not public or labels <= public:
            return None  # a public suffix, or a wildcard's root
        if public == depth:  # the usual case: the rule is the suffix found, one label more
            return (qname[:dot], suffix) if dot >= 0 else ("", qname)
        return _cut(qname, public + 1)

    def _split_deep(
        self, qname: str, known: str, depth: int, labels: int
    ) -> tuple[str, str] | None:
        """``split`` of a name of more labels than ``_TAIL_LABELS``: judged on its tail first,
        on the whole name only when the tail is all registered domain (as ``_split_library``)."""
        public = self._public(qname, known, depth < _TAIL_LABELS)
        if not public or public >= _TAIL_LABELS:
            return None
        if public + 1 == _TAIL_LABELS:  # a rule deeper than the tail
            public = self._public(qname, known, True)
            if not public or labels <= public:
                return None
        return _cut(qname, public + 1)

    def _public(self, qname: str, known: str, more: bool) -> int:
        """Labels of the public suffix of names whose longest rule suffix is ``known``, with
        labels left of it (``more``) or not; asks the library once per pair."""
        memo = self._inner if more else self._whole
        public = memo.get(known)
        if public is None:
            # Any name of the pair gives the same answer: ``qname`` has labels left of
            # ``known`` (it is longer), ``known`` has none.
            found = self._psl.publicsuffix(qname if more else known)
            public = memo[known] = 0 if found is None else str(found).count(".") + 1
        return public

    def _split_library(self, qname: str) -> tuple[str, str] | None:
        """``split`` by the library alone (names the memo does not take)."""
        parts = qname.rsplit(".", _TAIL_LABELS)
        tail = qname if len(parts) <= _TAIL_LABELS else qname[len(parts[0]) + 1 :]
        base = self._psl.privatesuffix(tail)
        if base is None:
            return None
        if len(base) == len(tail) and tail is not qname:
            base = self._psl.privatesuffix(qname)  # a rule deeper than we guessed
            if base is None:
                return None
        base = str(base)
        if len(base) == len(qname):
            return "", base
        return qname[: len(qname) - len(base) - 1], base


def _cut(qname: str, keep: int) -> tuple[str, str]:
    """``qname`` split before its last ``keep`` labels (it has at least as many)."""
    cut = len(qname)
    for _ in range(keep):
        cut = qname.rfind(".", 0, cut)
    return (qname[:cut], qname[cut + 1 :]) if cut >= 0 else ("", qname)
