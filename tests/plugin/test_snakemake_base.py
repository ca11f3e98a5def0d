"""Snakemake's own test workflows for executor plugins, run on Sparkles."""

from __future__ import annotations

import pytest
from snakemake.common.tests import TestWorkflowsLocalStorageBase

from snakemake_executor_plugin_sparkles import ExecutorSettings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("checked_home")]


class TestSparklesWorkflows(TestWorkflowsLocalStorageBase):  # type: ignore[misc]
    """Run the simple and group workflows with no shared file system."""

    __test__ = True

    def get_executor(self) -> str:
        return "sparkles"

    def get_executor_settings(self) -> ExecutorSettings:
        return ExecutorSettings()

    def get_assume_shared_fs(self) -> bool:
        return False
