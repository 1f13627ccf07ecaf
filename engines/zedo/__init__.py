"""ZeDO: zero-shot diffusion-based optimisation of 3D poses (prior, training, Algorithm 1, evaluation)."""
