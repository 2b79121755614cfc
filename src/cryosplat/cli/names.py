"""Choices the parsers offer, held here so that building a parser imports no torch.

``tests/test_cli_help.py`` checks that they equal the packages' own (``cryosplat.render.BACKENDS``,
``cryosplat.reconstruct.run.ENGINES``).
"""

ENGINES = ("grid", "splat")
BACKENDS = ("auto", "reference", "fast", "fourier")
SYMMETRY_HELP = "point group in RELION's conventions: C1 (none), Cn, Dn, T, O, I (= I2), I1-I4"
PASS_CHECKPOINTS = "checkpoints"
"""The folder in an output folder where ``score``, ``refine-defocus`` and ``refine-poses`` keep their
passes over the images as they go (:mod:`cryosplat.reconstruct.grid.row_store`), until the outputs
are written."""
DUST_SDS = 8.0
"""``reconstruct --dust-sds``'s default (``cryosplat.particles.dust.DUST_SDS``)."""
POSE_ANGLE_RANGE_DEGREES = 6.0
"""``refine-poses --angle-range``'s default (``cryosplat.reconstruct.grid.pose_fit``'s)."""
POSE_SHIFT_RANGE_PX = 2.0
"""``refine-poses --shift-range``'s default, pixels (``cryosplat.reconstruct.grid.pose_fit``'s)."""
