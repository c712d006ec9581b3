"""Settle: the back half of Submit, applying admitted reports to the store and the state."""
