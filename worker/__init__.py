"""SQS consumption: receive, parse, hand off over ZeroMQ, wait for confirmation, delete."""
