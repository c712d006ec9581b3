"""Storage health and backup checks behind the smart, mdraid, io_errors and backup sources.

The modules here parse tool output and files (pure functions, unit-tested on
recorded real-world captures) and run slow tools on their own schedule; the
source modules in dcguard.agent.sources only wire them to the report.
"""
