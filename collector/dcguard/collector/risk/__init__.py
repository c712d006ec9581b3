"""The data-loss risk engine: rules, their config, and the filesystem history they read."""
