"""The HTTP API, metrics and dashboard the daemon serves ([api]); see server.py."""
