"""The Sparkles engine: models, store, submission, clusters and monitoring."""

__version__ = "0.1.0"
