"""Orthographic Gaussian splatting: a pure-PyTorch reference and faster paths with the same signature."""
