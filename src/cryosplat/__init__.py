"""cryosplat: cryo-EM reconstruction with orthogonal-projection Gaussian splatting."""

__version__ = "0.1.0"
