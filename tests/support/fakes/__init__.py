"""Fakes that speak real wire formats over HTTP on loopback."""
