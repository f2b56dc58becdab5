"""Samplers are plain functions over a Denoiser (ddpm.sample_ddpm, ddim.sample_ddim, dpmpp.sample_dpmpp_2m,
unipc.sample_unipc, consistency.sample_consistency); table.py lists them for every reader, a SamplerSpec
(spec.py) names one with its settings, and run.sample_batch runs it with one RNG per image seed. Import from the
modules: this package imports nothing, so the table and the spec load without torch."""
