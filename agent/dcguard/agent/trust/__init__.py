"""Trust: the agent's key, the pinned CA, enrollment, and certificate renewal."""
