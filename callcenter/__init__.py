"""The shared kernel every domain imports, and the composition root that wires the domains
together (app, cli, processes, worker, systemd, schema, demo): docs/architecture.md "Layers"."""
