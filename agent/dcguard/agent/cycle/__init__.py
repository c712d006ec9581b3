"""The report cycle: every interval, each source fills its part of one report.

The report then goes to the spool (delivery); the cycle never waits on the network.
"""
