"""Log reading shared by every source that reads a log: auth_log and io_errors.

tailer.py follows a log file across rotation and truncation; journal.py runs
journalctl and parses its JSON lines. Sources keep their positions and save
them only once the report that carried what they read is durable.
"""
