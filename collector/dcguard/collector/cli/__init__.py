"""The dcguard-collector command line: serve, trust, agents, risk, events; nothing imports it."""
