"""Exposition: the Prometheus text families per host, and the HTTP endpoint that serves them."""
