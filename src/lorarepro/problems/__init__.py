"""Synthetic task generators: the targets, masks, losses and trainers of the matrix experiments."""
