"""The Sparkles engine: models, store, submission, clusters and monitoring.

The public API is :class:`Client` with the specs it takes::

    from sparkles_core import Client, JobSpec, LocalInput, TaskSpec

They are imported on first use, so that ``sparkles --help`` and the
Snakemake plugin's discovery do not pay for the engine's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Client", "JobSpec", "LocalInput", "TaskSpec", "__version__"]

_LAZY = {
    "Client": "sparkles_core.client",
    "JobSpec": "sparkles_core.models",
    "TaskSpec": "sparkles_core.models",
    "LocalInput": "sparkles_core.submit",
}

if TYPE_CHECKING:
    from sparkles_core.client import Client
    from sparkles_core.models import JobSpec, TaskSpec
    from sparkles_core.submit import LocalInput


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'sparkles_core' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
