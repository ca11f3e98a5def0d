"""Object storage and the content-addressed store (CAS) of Sparkles."""
