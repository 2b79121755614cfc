"""Readers and writers: MRC maps and stacks, RELION STAR, cryoSPARC .cs, cryoDRGN pickles."""
