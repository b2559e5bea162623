"""Hydra config groups, shipped as package data (a package so Hydra can find it as `audioclf.conf`)."""
