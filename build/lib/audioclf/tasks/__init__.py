"""What a user runs: train, evaluate, predict, export, search, doctor. Each takes a config and returns results."""
