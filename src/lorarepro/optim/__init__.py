"""Optimizers and update rules: GD, ScaledGD, preconditioned factor steps, proximal steps."""
