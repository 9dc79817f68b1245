"""Integration tests: real service processes on loopback, killed and run side by side."""
