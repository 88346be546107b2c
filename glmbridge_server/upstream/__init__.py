"""The upstream side: the HTTP client with retries and key failover, and the key pool."""
