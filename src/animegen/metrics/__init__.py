"""Scores for generated faces: FID (pytorch-fid exact), AFD (anime-face detection rate), SWD (offline)."""
