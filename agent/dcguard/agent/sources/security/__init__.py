"""Shared parts of the security sources (auth_log, fim, ports): events, the queue, settings."""

from __future__ import annotations
