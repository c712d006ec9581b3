"""dcguard-agent: builds a report every interval and delivers it to the collector."""
