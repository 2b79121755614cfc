"""Reconstruction: orchestration, run folder, checkpoints, outputs, and one subpackage per engine."""
