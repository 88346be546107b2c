"""Traffic control: slot scheduler, quota polling, Redis shared state, usage store and report,
metrics."""
