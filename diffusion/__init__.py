"""Class-conditional image diffusion in pure PyTorch (UNet, schedule, samplers, training, sampling).

Deliberately empty of imports: the web process imports `diffusion.rundir` (stdlib only) to read run
directories and must not pay for loading torch.
"""
