"""The only package that imports `torch`: rigid-body dynamics, IKT, IDT, FD and FK layers,
losses, datasets, training and evaluation."""
