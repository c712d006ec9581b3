"""dcguard-collector: receives agents' reports, keeps the latest state, serves /metrics."""
