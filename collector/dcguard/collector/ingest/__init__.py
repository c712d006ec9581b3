"""Ingest processes: children that receive on the agent port.

They run the receive stage and hand admitted calls to the collector process to settle.
"""
