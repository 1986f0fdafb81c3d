"""The configuration: one typed tree loaded from YAML and validated at start."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from resolver.config.errors import ConfigError
from resolver.config.loader import load_file, load_text
from resolver.config.schema import Config

__all__ = ["Config", "ConfigError", "default_text", "load"]


def default_text() -> str:
    """The embedded default configuration, documented."""
    return resources.files("resolver.config").joinpath("default.yaml").read_text("utf-8")


def load(path: Path | None) -> Config:
    """Load the file, or the embedded default when ``path`` is None; raise ConfigError."""
    if path is None:
        return load_text(default_text(), Config, "<embedded default.yaml>")
    return load_file(path, Config)
