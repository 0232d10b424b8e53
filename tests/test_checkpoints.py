"""Checkpoints: newest complete checkpoint, atomic saves, validation that leaves the weights alone."""
from __future__ import annotations

import pytest

from kokoro_nb import checkpoints


def test_validation_does_not_repack_4bit_weights():
    """An eval-mode forward without gradients must leave a 4-bit layer's weights as training uses them."""
    torch = pytest.importorskip("torch")
    bnb = pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    layer.load_state_dict(torch.nn.Linear(64, 64, bias=False).state_dict())
    layer = layer.to("cpu")
    model = torch.nn.Sequential(layer)
    x = torch.randn(2, 64)
    y_train = model(x)
    before = layer.weight.data.clone(), layer.weight.quant_state.absmax.clone()
    assert checkpoints.keep_4bit_training_layout(model) == 1
    model.eval()
    with torch.no_grad():
        y_eval = model(x)
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    assert torch.equal(layer.weight.data, before[0]) and torch.equal(layer.weight.quant_state.absmax, before[1])
    torch.testing.assert_close(y_eval, y_train.detach(), rtol=0, atol=0)
