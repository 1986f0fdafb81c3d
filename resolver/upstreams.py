"""The configured upstream servers as the core's ``Upstream`` values.

The config says what the operator wrote (``resolver.config.upstream``); the core's values are
built here, outside the config, so that loading the config never loads the core.
"""

from __future__ import annotations

from resolver.config.upstream import UpstreamConfig
from resolver.config.upstream_spec import UpstreamSpec
from resolver.core.steps import Upstream


def to_upstream(spec: UpstreamSpec) -> Upstream:
    """One parsed ``upstream.servers`` entry as the core's value (DoH: host = the '#' address)."""
    if spec.kind == "https":
        return Upstream(
            spec.address or "", spec.port, "https", spec.server_name or "", spec.url or ""
        )
    return Upstream(spec.host, spec.port, spec.kind, spec.server_name or "")


def upstream_addresses(cfg: UpstreamConfig) -> tuple[Upstream, ...]:
    """The servers to forward to, in the configured order."""
    return tuple(to_upstream(s) for s in cfg.specs())
