"""Paddle `nn.Layer` classes only: no file or console I/O here."""
