"""The shared inference fast path (plugformers.fast_path) on a toy module, independent of any family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from plugformers import fast_path


class Block(nn.Module):
    supports_fast_path = True

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 6), nn.Linear(8, 6, bias=False), nn.Linear(8, 4)
        self.fc = nn.Linear(8, 16)


def _x(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(dtype)


def _expected(block: Block, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([block.q(x), block.k(x), block.v(x)], dim=-1)


def test_off_by_default_and_plain_when_off() -> None:
    block, x = Block(), _x(2, 3, 8)
    assert not fast_path.is_enabled(block)
    assert fast_path.fused_linear(block, x, block.q, block.k, block.v) is None
    with torch.no_grad():
        torch.testing.assert_close(fast_path.linear(block, x, block.fc, "gelu"), nn.functional.gelu(block.fc(x)))


@pytest.mark.parametrize("onednn", [True, False])
def test_fused_and_single_layers_match_the_plain_path(monkeypatch: pytest.MonkeyPatch, onednn: bool) -> None:
    monkeypatch.setenv(fast_path.ONEDNN_ENV, "1" if onednn else "0")
    torch.manual_seed(0)
    block, x = Block(), _x(2, 3, 8)
    fast_path.enable(block)
    with torch.no_grad():
        fused = fast_path.fused_linear(block, x, block.q, block.k, block.v)  # a bias-less layer in the group
        assert fused is not None
        torch.testing.assert_close(fused, _expected(block, x), atol=1e-6, rtol=1e-6)
        for act, fn in ((None, lambda t: t), ("gelu", nn.functional.gelu), ("relu", torch.relu)):
            torch.testing.assert_close(fast_path.linear(block, x, block.fc, act), fn(block.fc(x)), atol=1e-6, rtol=1e-6)
        with pytest.raises(ValueError, match="fuses only"):
            fast_path.linear(block, x, block.fc, "tanh")


def _packed(block: nn.Module) -> list[bool]:
    return [entry.packed is not None for entry in block.__dict__["_plugformers_fast_path"].entries.values()]


@pytest.mark.parametrize(
    ("capability", "setting", "packed"),
    [
        ("AVX512", None, True), ("AMX", None, True), ("AVX2", None, False), ("DEFAULT", None, False),
        ("AVX2", "1", True), ("AVX512", "0", False), ("AVX512", "off", False), ("AVX2", "yes", True),
    ],
)
def test_onednn_only_where_it_pays_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, capability: str, setting: str | None, packed: bool
) -> None:
    if not fast_path.onednn_available():
        pytest.skip("this torch build has no oneDNN linear kernel")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    if setting is None:
        monkeypatch.delenv(fast_path.ONEDNN_ENV, raising=False)
    else:
        monkeypatch.setenv(fast_path.ONEDNN_ENV, setting)
    assert fast_path.onednn_preferred() is packed
    block, x = Block(), _x(3, 8)
    fast_path.enable(block)
    with torch.no_grad():
        torch.testing.assert_close(fast_path.linear(block, x, block.fc, "gelu"), nn.functional.gelu(block.fc(x)))
    assert _packed(block) == [packed]


def test_onednn_setting_must_be_a_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast_path.ONEDNN_ENV, "fast")
    block, x = Block(), _x(3, 8)
    fast_path.enable(block)
    with torch.no_grad(), pytest.raises(ValueError, match="PLUGFORMERS_FAST_PATH_ONEDNN='fast'"):
        fast_path.linear(block, x, block.fc)


def test_follows_in_place_changes_replaced_layers_and_dtype_changes() -> None:
    torch.manual_seed(0)
    block, x = Block(), _x(4, 8)
    fast_path.enable(block)
    with torch.no_grad():
        fast_path.fused_linear(block, x, block.q, block.k, block.v)
        block.k.weight.add_(1.0)  # bumps the version counter
        torch.testing.assert_close(fast_path.fused_linear(block, x, block.q, block.k, block.v), _expected(block, x))
        block.q.weight = nn.Parameter(torch.zeros(6, 8))  # a new tensor altogether
        torch.testing.assert_close(fast_path.fused_linear(block, x, block.q, block.k, block.v), _expected(block, x))
        block.double()
        x64 = x.double()
        torch.testing.assert_close(fast_path.fused_linear(block, x64, block.q, block.k, block.v), _expected(block, x64))


def test_steps_aside_for_gradients_and_other_input_dtypes() -> None:
    block, x = Block(), _x(4, 8)
    fast_path.enable(block)
    assert fast_path.fused_linear(block, x, block.q, block.k, block.v) is None  # weights require grad
    block.requires_grad_(False)
    assert fast_path.fused_linear(block, x.requires_grad_(), block.q, block.k, block.v) is None
    with torch.no_grad():
        if fast_path.onednn_preferred():
            # float32 weights are packed for float32 input only; bfloat16 input takes the plain path.
            assert fast_path.fused_linear(block, x.bfloat16(), block.q, block.k, block.v) is None
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast decides the matmul dtype, not us
            assert fast_path.fused_linear(block, x, block.q, block.k, block.v) is None
            assert fast_path.linear(block, x, block.fc).dtype == torch.bfloat16


class _Traced(nn.Module):
    """A Block whose forward goes through the fast path, so that it can be traced."""

    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        fast_path.enable(self.block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        fused = fast_path.fused_linear(b, x, b.q, b.k, b.v)
        return fused if fused is not None else _expected(b, x)


def test_a_trace_records_the_real_weights_not_derived_copies() -> None:
    module, x = _Traced().requires_grad_(False), _x(4, 8)
    with torch.no_grad():
        module(x)  # the derived weights exist now; a trace must not freeze them as constants
        traced = torch.jit.trace(module, (x,))
        module.block.k.weight.mul_(2.0)
        torch.testing.assert_close(traced(x), _expected(module.block, x))


def test_steps_aside_for_inference_tensors() -> None:
    with torch.inference_mode():  # weights made here have no version counter to watch
        block, x = Block(), _x(4, 8)
        fast_path.enable(block)
        assert fast_path.fused_linear(block, x, block.q, block.k, block.v) is None
        torch.testing.assert_close(fast_path.linear(block, x, block.fc), block.fc(x))


def test_disable_and_reset_free_the_derived_weights() -> None:
    block, x = Block(), _x(4, 8)
    fast_path.enable(block)
    with torch.no_grad():
        fast_path.fused_linear(block, x, block.q, block.k, block.v)
    state = block.__dict__["_plugformers_fast_path"]
    assert state.entries
    fast_path.reset(block)
    assert not state.entries and fast_path.is_enabled(block)
    fast_path.disable(block)
    assert not fast_path.is_enabled(block)


def test_model_without_fast_path_modules_says_so() -> None:
    from tinyfamily import TinyConfig, TinyModel

    model = TinyModel(TinyConfig())
    assert not model.supports_fast_path
    with pytest.raises(NotImplementedError, match="TinyModel has no fast path"):
        model.enable_fast_path()
    assert model.disable_fast_path() is model


class ConvBlock(nn.Module):
    supports_fast_path = True

    def __init__(self, conv_bias: bool = False, affine: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=conv_bias)
        self.norm = nn.BatchNorm2d(8, affine=affine)
        with torch.no_grad():  # statistics and affine terms far from the identity, so that folding them matters
            self.norm.running_mean.uniform_(-1.0, 1.0)
            self.norm.running_var.uniform_(0.2, 3.0)
            if affine:
                self.norm.weight.uniform_(0.5, 2.0)
                self.norm.bias.uniform_(-1.0, 1.0)


@pytest.mark.parametrize(("conv_bias", "affine"), [(False, True), (True, False)])
def test_conv_bn_folds_the_norm_and_follows_its_statistics(conv_bias: bool, affine: bool) -> None:
    block, x = ConvBlock(conv_bias, affine).eval(), _x(2, 3, 9, 9)
    fast_path.enable(block)
    with torch.no_grad():
        out = fast_path.conv_bn(block, x, block.conv, block.norm, nn.ReLU())
        torch.testing.assert_close(out, torch.relu(block.norm(block.conv(x))), atol=1e-5, rtol=1e-5)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert block.__dict__["_plugformers_fast_path"].entries, "the folded weights were not used"
        block.norm.running_var.mul_(3.0)  # e.g. after a training step: the folded copy must be rebuilt
        torch.testing.assert_close(
            fast_path.conv_bn(block, x, block.conv, block.norm), block.norm(block.conv(x)), atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(fast_path.conv_bn(block, x, block.conv), block.conv(x), atol=1e-5, rtol=1e-5)
        block.double()
        x64 = x.double()
        torch.testing.assert_close(
            fast_path.conv_bn(block, x64, block.conv, block.norm), block.norm(block.conv(x64)), atol=1e-12, rtol=1e-12
        )


def test_conv_bn_keeps_batch_statistics_in_training_and_gradients() -> None:
    import copy

    block, x = ConvBlock().train(), _x(4, 3, 9, 9)
    twin = copy.deepcopy(block)
    fast_path.enable(block)
    with torch.no_grad():
        out = fast_path.conv_bn(block, x, block.conv, block.norm)
        torch.testing.assert_close(out, twin.norm(twin.conv(x)))  # batch statistics, not the running ones
    torch.testing.assert_close(block.norm.running_mean, twin.norm.running_mean)  # updated once, like the plain path
    block.eval()
    out = fast_path.conv_bn(block, x, block.conv, block.norm)
    out.sum().backward()
    assert block.conv.weight.grad is not None and block.norm.weight.grad is not None
    assert not block.__dict__["_plugformers_fast_path"].entries
