"""animegen: diffusion models (and a StyleGAN2) for anime faces, from one command line."""

__version__ = "0.1.0"
