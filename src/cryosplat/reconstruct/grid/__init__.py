"""The default engine: Fourier sufficient statistics, gridded loss, coarse-to-fine fit."""
