"""What each client is sent, below the libraries' adapters: its bounded outgoing queue
(`queue.py`) and the frame writer the fan-out writes through (`frames.py`)."""
