"""Delivery: the durable spool every report is written to, and the sender.

A report leaves the spool only once the collector acknowledged it.
"""
