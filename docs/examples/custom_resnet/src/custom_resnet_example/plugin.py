"""Entry-point hook: tells plugformers about the "custom-resnet" family (names only, nothing imported)."""

from __future__ import annotations

from plugformers import hookimpl

_CONFIG = "custom_resnet_example.configuration_resnet:ResnetConfig"
_MODELING = "custom_resnet_example.modeling_resnet"
# Plain torch modules returning bare tensors or dicts: no hidden states or tuple outputs, no checkpointing.
_PLAIN_TORCH = {
    "outputs": "returns a bare tensor or a dict: no hidden states, attentions or return_dict=False",
    "gradient_checkpointing": "plain torch blocks without a checkpointing hook (supports_gradient_checkpointing is False)",
}


@hookimpl
def plugformers_register_families(register):
    register(
        "custom-resnet",
        config=_CONFIG,
        models={
            "AutoModel": f"{_MODELING}:ResnetModel",
            "AutoModelForImageClassification": f"{_MODELING}:ResnetModelForImageClassification",
        },
        modality="image",
        # Two narrow basic stages deep: a model of milliseconds for the conformance suite and `demo --small`.
        tiny_config={
            "block_type": "basic",
            "layers": [1, 1, 1, 1],
            "channels": [4, 4, 8, 8],
            "stem_width": 8,
            "num_classes": 5,
        },
        example_inputs="custom_resnet_example.examples:example_inputs",
        skips={
            "ResnetModel": {
                **_PLAIN_TORCH,
                # A known reason for a failing check: the suite found these weights unused.
                "backward": "holds the classifier (model.fc) in the checkpoint layout it shares with the head, unused",
            },
            "ResnetModelForImageClassification": dict(_PLAIN_TORCH),
        },
    )
