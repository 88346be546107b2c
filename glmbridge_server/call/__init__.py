"""One call through the bridge: the per-call record, the drivers and the relay."""
