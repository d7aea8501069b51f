"""Making failures visible: health and readiness, Prometheus metrics, the
background monitors, log formatting, and the one redaction module."""
