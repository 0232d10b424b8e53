"""Checkpoints: newest complete checkpoint, atomic saves, validation that leaves the weights alone."""
from __future__ import annotations

import pytest

from kokoro_nb.train import checkpoints


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


def _fake_checkpoint(root, step: int, complete: bool = True):
    folder = root / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 4)
    (folder / "trainer_state.json").write_text('{"global_step": %d}' % step)
    if complete:
        checkpoints.mark_complete(folder, step)
    return folder


def _truncate(folder):
    f = folder / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:100])


def _flip_a_byte(folder):
    f = folder / "adapter_model.safetensors"
    data = bytearray(f.read_bytes())
    data[10] ^= 0xFF
    f.write_bytes(bytes(data))


def _unmark(folder):
    (folder / checkpoints.COMPLETE_MARKER).unlink()


@pytest.mark.parametrize("damage,reason", [
    (_truncate, "100 bytes, 1024 written"), (_flip_a_byte, "SHA-256 differs"), (_unmark, "did not finish"),
])
def test_newest_damaged_checkpoint_falls_back_to_the_previous(tmp_path, damage, reason):
    _fake_checkpoint(tmp_path, 2)
    _fake_checkpoint(tmp_path, 10)
    newest = _fake_checkpoint(tmp_path, 12)
    assert checkpoints.last_checkpoint(tmp_path).endswith("checkpoint-12")       # numeric order, not 10 < 2
    damage(newest)
    skipped = []
    assert checkpoints.last_checkpoint(tmp_path, skipped=skipped).endswith("checkpoint-10")
    assert skipped[0][0] == str(newest) and reason in skipped[0][1]
    assert checkpoints.remove_incomplete(skipped) == [f"removed incomplete checkpoint checkpoint-12: {skipped[0][1]}"]
    assert not newest.exists() and checkpoints.last_checkpoint(tmp_path).endswith("checkpoint-10")


def test_no_complete_checkpoint_means_a_fresh_start(tmp_path):
    assert checkpoints.last_checkpoint(tmp_path) is None
    _fake_checkpoint(tmp_path, 4, complete=False)
    (tmp_path / "checkpoints" / "tmp-checkpoint-8").mkdir()                    # not a checkpoint name
    assert checkpoints.last_checkpoint(tmp_path) is None


def test_marker_is_written_atomically_and_lists_every_file(tmp_path):
    folder = _fake_checkpoint(tmp_path, 3, complete=False)
    (folder / "sub").mkdir()
    (folder / "sub" / "rng_state_1.pth").write_bytes(b"x")
    marker = checkpoints.mark_complete(folder, 3)
    import json
    manifest = json.loads(marker.read_text())
    assert manifest["step"] == 3
    assert set(manifest["files"]) == {"adapter_model.safetensors", "trainer_state.json", "sub/rng_state_1.pth"}
    assert not list(folder.glob(".tmp-*"))
    (folder / "sub" / "rng_state_1.pth").unlink()
    assert "sub/rng_state_1.pth missing" in checkpoints.check_complete(folder)
