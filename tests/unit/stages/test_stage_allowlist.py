"""allowlist: a listed name, or any name under it, is TRUSTED; the rest continues."""

from __future__ import annotations

import pytest

from resolver.core.blocklist import ListHolder
from resolver.core.steps import CONTINUE, TRUSTED
from resolver.stages.allowlist import AllowlistStage
from tests.fakes import StaticBlocklist, make_query

ALLOWED = ("impots.gouv.fr", "service-public.fr", "ok.bad.test")


def stage(names: tuple[str, ...] = ALLOWED) -> AllowlistStage:
    return AllowlistStage(ListHolder(StaticBlocklist(names)))


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("impots.gouv.fr", True),
        ("www.impots.gouv.fr", True),
        ("a.b.c.impots.gouv.fr", True),
        ("IMPOTS.Gouv.FR", True),  # queries are lower-cased by the parser
        ("gouv.fr", False),  # a parent is not allowed
        ("faux-impots.gouv.fr", False),  # shares a suffix, not a label boundary
        ("impots.gouv.fr.evil.test", False),
        ("ok.bad.test", True),
        ("bad.test", False),
        ("other.bad.test", False),
        ("example.test", False),
    ],
)
def test_decide(name: str, trusted: bool) -> None:
    st = stage()
    step = st.decide(make_query(name.lower(), wire_name=name), 0.0)
    assert step is (TRUSTED if trusted else CONTINUE)
    assert st.allows(name.lower()) is trusted


def test_empty_allowlist_trusts_nothing() -> None:
    assert AllowlistStage(ListHolder()).decide(make_query("impots.gouv.fr"), 0.0) is CONTINUE


def test_holder_swap_is_seen_by_the_next_query() -> None:
    holder = ListHolder(StaticBlocklist(["old.test"]))
    st = AllowlistStage(holder)
    assert st.decide(make_query("old.test"), 0.0) is TRUSTED
    holder.current = StaticBlocklist(["new.test"])
    assert st.decide(make_query("old.test"), 0.0) is CONTINUE
    assert st.decide(make_query("a.new.test"), 0.0) is TRUSTED


def test_name_policy_and_describe() -> None:
    st = stage()
    assert (st.name, st.policy) == ("allowlist", True)
    assert st.describe() == "3 names"
