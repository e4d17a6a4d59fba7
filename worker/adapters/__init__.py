"""The worker's uses of botocore's internals, in one place; the table of every library
internal the project relies on is in server/adapters/__init__.py."""
