"""Benchmark: the process-based worker against other designs of the SQS -> Socket.IO relay."""
