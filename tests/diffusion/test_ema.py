"""Warm-up EMA: follows the raw weights early, averages later, and round-trips through a state dict."""
import torch
from torch import nn

from diffusion.ema import EMA


def test_warmup_decay_ramps_to_the_cap():
    ema = EMA(nn.Linear(2, 2), decay=0.99)
    decays = []
    for _ in range(2000):
        decays.append(ema.current_decay())
        ema.num_updates += 1
    assert decays[0] == 0.1 and decays[10] == 11 / 20
    assert all(a <= b for a, b in zip(decays, decays[1:])) and decays[-1] == 0.99
    assert EMA(nn.Linear(2, 2), decay=0.99, warmup=False).current_decay() == 0.99


def test_average_matches_the_formula_and_state_round_trips():
    """Tried: weights set to 1, 2, 3 on three updates; the EMA must equal the hand-computed average."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.999)
    expected = 0.0
    for n, value in enumerate((1.0, 2.0, 3.0)):
        with torch.no_grad():
            model.weight.fill_(value)
        d = min(0.999, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        ema.update(model)
    assert abs(ema.model.weight.item() - expected) < 1e-6
    assert not ema.model.weight.requires_grad
    other = EMA(nn.Linear(1, 1, bias=False))
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 3 and other.model.weight.item() == ema.model.weight.item()
