"""Batched audio transforms on the device: frontends (framed in ms) and augmentation."""
