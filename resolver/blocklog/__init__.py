"""The block log: blocked queries written to SQLite off the event loop, read by the dashboard."""

from resolver.blocklog.schema import SCHEMA_VERSION, BlockLogError, SchemaError, open_db
from resolver.blocklog.writer import BlockEvent, BlockLogWriter

__all__ = [
    "SCHEMA_VERSION",
    "BlockEvent",
    "BlockLogError",
    "BlockLogWriter",
    "SchemaError",
    "open_db",
]
