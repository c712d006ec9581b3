"""State and risk: the latest state of every host in memory, and the risk engine that judges it."""
