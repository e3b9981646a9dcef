"""What every stage shares: the compute device and precision, progress curves, and the model
folder (its files, loading and saving a network with its config)."""
