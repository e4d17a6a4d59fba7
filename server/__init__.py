"""The ASGI server: python-socketio on uvicorn, fed by an async ZeroMQ subscriber task."""
