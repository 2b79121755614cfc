"""Foundation: errors, conventions, rotations, Fourier helpers, CTF, Fourier slices. Imports no other layer."""
