"""Configuration: which backend serves each role, and what nodes look like.

Settings come from an INI file with a ``[config]`` section (``.sparkles`` or
``.kubeque`` in the working folder or above, or the file given with
``-c``), then ``-o key=value`` overrides, then the ``SPARKLES_*``
environment variables. With no settings at all, every role is embedded and
keeps its state under one folder: ``$SPARKLES_HOME``, else the platform's
user data folder.
"""

from __future__ import annotations

from sparkles_core.config.loader import find_config_file, load_config, parse_override
from sparkles_core.config.model import Config

__all__ = ["Config", "find_config_file", "load_config", "parse_override"]
