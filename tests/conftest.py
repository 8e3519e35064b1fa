"""Test-session settings."""

import torch

# The suite trains tiny models; one thread avoids OpenMP hand-off costs on small CI machines.
torch.set_num_threads(1)
