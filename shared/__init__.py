"""The contract the worker and the server both import: settings, envelope, wire format, logging.

Nothing in this package starts a process or holds state between calls.
"""
