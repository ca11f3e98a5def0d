"""Run Snakemake workflows on Sparkles: ``snakemake --executor sparkles``.

Snakemake finds this package by its name and reads the three attributes
below; the work is done in the modules they come from.
"""

from __future__ import annotations

from snakemake_executor_plugin_sparkles.executor import Executor
from snakemake_executor_plugin_sparkles.settings import (
    ExecutorSettings,
    common_settings,
)

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
