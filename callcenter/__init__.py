"""Composition root: settings, connections, the HTTP app, the CLI and the process supervisor."""
