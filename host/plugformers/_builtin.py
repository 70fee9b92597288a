"""The host's own contributions, registered through the same hooks as any plugin."""

from __future__ import annotations

from plugformers.hookspecs import RegisterAttention, hookimpl


@hookimpl
def plugformers_register_attention(register: RegisterAttention) -> None:
    register("eager", "plugformers.attention:eager_attention")
    register("sdpa", "plugformers.attention:sdpa_attention")
