"""The ASGI server: python-socketio on uvicorn, fed by workers over a ZeroMQ hand-off task."""
