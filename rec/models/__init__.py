"""Paddle `nn.Layer` classes only (the two-tower network, the CTR networks): no file or
console I/O, no training code; everything around them lives in rec/twotower and rec/ctr.
"""
