"""The ``cryosplat`` command line: each command parses, builds a config and calls the library."""
