"""Where results are kept: L1/L2/L3 caches, the Redis client, the circuit breaker, the request log."""
