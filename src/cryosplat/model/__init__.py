"""The Gaussian mixture: parameters, voxeliser, models from atoms, export for ChimeraX."""
