"""Simulation: particle stacks from atoms, maps or models, the project command's logic, the demo."""
