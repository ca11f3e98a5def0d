"""The ``sparkles`` command: manage jobs from the terminal."""
