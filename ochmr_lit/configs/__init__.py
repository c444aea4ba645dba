"""Hydra configuration groups of ochmr_lit (a package so Hydra can find it as pkg://ochmr_lit.configs)."""
