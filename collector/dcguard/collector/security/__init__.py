"""Security events at the collector: storage, detections, metrics, the events command, SIEM out."""
