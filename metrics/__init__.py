"""Live counters and gauges (Prometheus), the wallboard feed, historical reports, staffing."""
