"""Presence: who is in a room and who is online, counted by user across servers (issue 28).

- model.py: scopes, changes (joins and leaves) and the backend's event bodies;
- store.py: the one interface of the count keeper, and its two implementations, local.py (one
  server, SQLite for what must survive a crash) and redis_store.py (cluster mode, Lua scripts
  over Redis hashes, with servers' leases);
- tracker.py: this server's connections into the store, and changes out to clients;
- outbox.py: the backend's events to SQS, in order, through outages.
"""
