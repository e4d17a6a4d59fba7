"""The servers' control bus, and the commands it carries: a message that every server acts on
once, beside the events that go to clients (which travel through the replay history).

- `bus.py`: the :class:`~server.control.bus.ControlBus` interface and its in-process
  implementation (one server, or several without Redis: each gets every batch anyway);
- `redis_bus.py`: cluster mode's, a Redis stream ``<REDIS_PREFIX>:control`` every server reads;
- `revocations.py`: which users' older tokens a disconnect command refuses for a while;
- `disconnect.py`: the ``relay:disconnect`` command, from the SQS message to closed connections.

:class:`~server.relay.Relay` picks the implementations once, from ``settings.cluster``.
"""
