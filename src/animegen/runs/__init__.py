"""Runs and models: configs, presets, checkpoint files, and loading a trained model (no training code)."""
