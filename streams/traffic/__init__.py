"""Real-time traffic: one-minute event-time windows per site (docs/traffic.md)."""
