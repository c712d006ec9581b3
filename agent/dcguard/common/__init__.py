"""Primitives shared by the agent and the collector: durations, config reading, version."""
