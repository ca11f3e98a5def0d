"""Run the worker with ``python -m sparkles_worker``."""

from sparkles_worker.cli import main

main()
