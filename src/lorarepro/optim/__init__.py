"""Optimizers for the synthetic problems: GD, ScaledGD, AltGD, preconditioners, proximal steps."""
