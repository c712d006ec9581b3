"""What keeps the long-running agent process small: no libcrypto, start-up garbage returned."""
