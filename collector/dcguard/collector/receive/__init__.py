"""Receive: the gRPC server, decoding, authentication and validation of each call.

The one place a peer's identity is decided (auth.py); nothing here touches the store.
"""
