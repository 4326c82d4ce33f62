"""What the service tells about itself: Prometheus metrics, per-second windows, /stats, advice, memory."""
