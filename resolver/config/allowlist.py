"""The ``allowlist`` section: names the operator never wants blocked."""

from __future__ import annotations

from dataclasses import dataclass, field

from resolver.checks import check
from resolver.config.values import zone_names


@dataclass(frozen=True, slots=True)
class AllowlistConfig:
    # Names never blocked, with every name under them; the operator's word beats every list.
    names: tuple[str, ...] = field(default=(), metadata=check(zone_names))
    # Files of such names, one per line.
    files: tuple[str, ...] = ()
    # The file the box writes when the operator allows a name from the page or with
    # `parafoudre allow`; read like the files above. "" = <state_dir>/allowlist.operator.txt.
    operator_file: str = ""
