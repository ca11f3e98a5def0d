"""The Sparkles worker daemon: claim, stage, run, report, upload."""
