"""A domain the detector cut off for exfiltration, allowed by the operator (the page's "allow
this domain" or `parafoudre allow --domain`): answered again within a second, for the suspect
machine too, and still after a restart (the allow is a file, not the detector's memory)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from resolver.operator_allowlist import OperatorAllowlist, operator_path
from tests.conftest import FakeUpstream, make_config, running
from tests.integration.test_one_policy import TUNNEL, ask, start_tunnel, tunnel_name
from tests.integration.test_one_policy import upstream as upstream  # the fixture


async def test_allowing_a_domain_cut_off_for_exfiltration_is_lasting(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cfg = make_config(tmp_path, upstream.port, "rate_limit:\n  enabled: false\n")
    www = f"www.{TUNNEL}"
    rng = random.Random(21)
    async with running(cfg) as app:
        await start_tunnel(app, rng)
        assert await ask(app, www) == ("NXDOMAIN", [])  # the suspect is in a cool-down
        ops = OperatorAllowlist(operator_path(cfg), cfg.blocklog_path())
        entry = await asyncio.to_thread(
            ops.allow, tunnel_name(rng), who="marie", scope="domain", detail="exfil:entropy"
        )
        assert entry.name == TUNNEL
        started = time.monotonic()
        while await ask(app, www) != ("NOERROR", ["192.0.2.10"]):
            assert time.monotonic() - started < 1.0, "not allowed within a second"
            await asyncio.sleep(0.02)
        # The tunnel's own queries are no longer judged either: the operator said so.
        for _ in range(30):
            assert await ask(app, tunnel_name(rng), rdtype="TXT") is not None
        assert await ask(app, f"new200.{TUNNEL}") == ("NOERROR", ["192.0.2.11"])
    async with running(cfg) as app:  # a restart: the detector's memory is gone, the allow not
        for _ in range(60):
            await ask(app, tunnel_name(rng), rdtype="TXT")
        assert await ask(app, www) == ("NOERROR", ["192.0.2.10"])
