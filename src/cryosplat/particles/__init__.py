"""Particle sets: the ParticleSet container, the RELION/cryoSPARC/cryoDRGN readers, half sets, summaries."""
