"""The embedded SQS emulator for a machine without AWS: moto's server on loopback."""
