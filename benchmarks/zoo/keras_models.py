"""Keras architectures with their libraries' own initializers: keras.applications (``weights=None``) and
keras_hub backbones built from their constructors (no presets, nothing downloaded).

keras_hub backbones are given small but realistic sizes: 2 layers, width 256, 4 heads, a 1,000-token
vocabulary (text); vision backbones get a preset's stage layout, shortened.
"""

from __future__ import annotations

from typing import Any, Callable

# keras.applications: constructor name -> input size (the smallest each accepts, or a small one)
APPLICATIONS: dict[str, int] = {
    "Xception": 71, "VGG16": 32, "VGG19": 32, "ResNet50": 32, "ResNet101": 32, "ResNet152": 32,
    "ResNet50V2": 32, "ResNet101V2": 32, "ResNet152V2": 32, "InceptionV3": 75, "InceptionResNetV2": 75,
    "MobileNet": 32, "MobileNetV2": 32, "MobileNetV3Small": 32, "MobileNetV3Large": 32, "DenseNet121": 32,
    "DenseNet169": 32, "DenseNet201": 32, "NASNetMobile": 32, "EfficientNetB0": 32, "EfficientNetB1": 32,
    "EfficientNetB2": 32, "EfficientNetB3": 32, "EfficientNetB4": 32, "EfficientNetV2B0": 32,
    "EfficientNetV2B1": 32, "EfficientNetV2B2": 32, "EfficientNetV2B3": 32, "EfficientNetV2S": 32,
    "ConvNeXtTiny": 32, "ConvNeXtSmall": 32,
}


def application(name: str, size: int) -> Callable[[], Any]:
    def build():
        import keras

        keras.utils.set_random_seed(0)
        kwargs: dict[str, Any] = {"weights": None, "input_shape": (size, size, 3), "classes": 100}
        if name.startswith("NASNet"):  # NASNet insists on 224x224 with a top; its body is what we check
            kwargs.update(include_top=False)
            kwargs.pop("classes")
        return getattr(keras.applications, name)(**kwargs)

    return build


# generic small sizes for keras_hub transformer backbones, by constructor argument name
TEXT_ARGS: dict[str, Any] = {
    "vocabulary_size": 1000, "vocab_size": 1000, "num_layers": 2, "num_heads": 4, "num_query_heads": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_dim": 256, "embedding_dim": 128,
    "intermediate_dim": 512, "head_dim": 64, "num_experts": 4, "moe_intermediate_dim": 256,
    "shared_expert_intermediate_dim": 256, "max_sequence_length": 128, "head_size": 64,
}
TEXT_BACKBONES: dict[str, dict[str, Any]] = {
    "AlbertBackbone": {}, "BartBackbone": {}, "BertBackbone": {}, "BloomBackbone": {},
    "DebertaV3Backbone": {}, "DistilBertBackbone": {}, "ElectraBackbone": {}, "ESMBackbone": {},
    "ESM2Backbone": {}, "FNetBackbone": {}, "FalconBackbone": {}, "GPT2Backbone": {}, "GPTNeoXBackbone": {},
    "GemmaBackbone": {}, "LlamaBackbone": {}, "Llama3Backbone": {}, "MistralBackbone": {},
    "MixtralBackbone": {}, "OPTBackbone": {}, "Phi3Backbone": {}, "QwenBackbone": {}, "Qwen2Backbone": {},
    "Qwen3Backbone": {}, "QwenMoeBackbone": {}, "Qwen3MoeBackbone": {}, "RobertaBackbone": {},
    "XLMRobertaBackbone": {}, "RoformerV2Backbone": {}, "T5Backbone": {}, "XLNetBackbone": {},
    "WhisperBackbone": {"max_encoder_sequence_length": 64, "max_decoder_sequence_length": 64},
    "GptOssBackbone": {},
}


def _fill(cls, extra: dict[str, Any]) -> dict[str, Any]:
    import inspect

    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in TEXT_ARGS.items() if k in params}
    kwargs.update(extra)
    return kwargs


def hub_backbone(class_name: str, kwargs: dict[str, Any], fill: bool = False) -> Callable[[], Any]:
    def build():
        import keras

        from ._env import import_keras_hub

        keras_hub = import_keras_hub()
        keras.utils.set_random_seed(0)
        cls = getattr(keras_hub.models, class_name)
        return cls(**(_fill(cls, kwargs) if fill else kwargs))

    return build


IMG = (64, 64, 3)
# vision backbones: a preset's layout, stages shortened where a preset has many blocks
VISION_BACKBONES: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet18_basic": ("ResNetBackbone", dict(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[2, 2, 2, 2], stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
        image_shape=IMG)),
    "resnet50_bottleneck": ("ResNetBackbone", dict(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[1, 1, 1, 1], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
        image_shape=IMG)),
    "resnet_v2_50": ("ResNetBackbone", dict(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[1, 1, 1, 1], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
        use_pre_activation=True, image_shape=IMG)),
    "resnet_vd": ("ResNetBackbone", dict(
        input_conv_filters=[32, 32, 64], input_conv_kernel_sizes=[3, 3, 3],
        stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block_vd", image_shape=IMG)),
    "cspdarknet": ("CSPNetBackbone", dict(
        stem_filters=32, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 1, 2, 1],
        stackwise_strides=2, stackwise_num_filters=[64, 128, 256, 512], block_type="dark_block",
        stage_type="csp", expand_ratio=2.0, bottle_ratio=0.5, block_ratio=1.0, image_shape=IMG)),
    "densenet": ("DenseNetBackbone", dict(stackwise_num_repeats=[2, 2, 2, 2], image_shape=IMG)),
    "efficientnet_b0": ("EfficientNetBackbone", dict(
        stackwise_width_coefficients=[1.0] * 7, stackwise_depth_coefficients=[1.0] * 7,
        stackwise_kernel_sizes=[3, 3, 5, 3, 5, 5, 3], stackwise_num_repeats=[1, 2, 2, 3, 3, 4, 1],
        stackwise_input_filters=[32, 16, 24, 40, 80, 112, 192],
        stackwise_output_filters=[16, 24, 40, 80, 112, 192, 320],
        stackwise_expansion_ratios=[1, 6, 6, 6, 6, 6, 6], stackwise_squeeze_and_excite_ratios=[0.25] * 7,
        stackwise_strides=[1, 2, 2, 2, 1, 2, 1], stackwise_block_types=["v1"] * 7, input_shape=IMG)),
    "efficientnetv2_b0": ("EfficientNetBackbone", dict(
        stackwise_width_coefficients=[1.0] * 6, stackwise_depth_coefficients=[1.0] * 6,
        stackwise_kernel_sizes=[3] * 6, stackwise_num_repeats=[1, 2, 2, 3, 5, 8],
        stackwise_input_filters=[32, 16, 32, 48, 96, 112], stackwise_output_filters=[16, 32, 48, 96, 112, 192],
        stackwise_expansion_ratios=[1, 4, 4, 4, 6, 6], stackwise_squeeze_and_excite_ratios=[0, 0, 0, 0.25, 0.25, 0.25],
        stackwise_strides=[1, 2, 2, 2, 1, 2], stackwise_block_types=["fused", "fused", "fused", "unfused", "unfused", "unfused"],
        stackwise_force_input_filters=[0] * 6, stackwise_nores_option=[False] * 6, input_shape=IMG)),
    "vgg16": ("VGGBackbone", dict(stackwise_num_repeats=[2, 2, 3, 3, 3],
                                  stackwise_num_filters=[64, 128, 256, 512, 512], image_shape=IMG)),
    "vit": ("ViTBackbone", dict(image_shape=IMG, patch_size=16, num_layers=2, num_heads=4, hidden_dim=256,
                                mlp_dim=512)),
    "deit": ("DeiTBackbone", dict(image_shape=IMG, patch_size=16, num_layers=2, num_heads=4, hidden_dim=256,
                                  intermediate_dim=512)),
    "dinov2": ("DINOV2Backbone", dict(patch_size=14, num_layers=2, hidden_dim=256, num_heads=4,
                                      intermediate_dim=512, image_shape=(56, 56, 3),
                                      position_embedding_shape=(56, 56, 3))),
    "dinov2_swiglu_registers": ("DINOV2Backbone", dict(
        patch_size=14, num_layers=2, hidden_dim=256, num_heads=4, intermediate_dim=512, use_swiglu_ffn=True,
        num_register_tokens=4, layer_scale_init_value=1e-5, image_shape=(56, 56, 3),
        position_embedding_shape=(56, 56, 3))),
    "dinov3": ("DINOV3Backbone", dict(patch_size=16, num_layers=2, hidden_dim=256, num_heads=4,
                                      intermediate_dim=512, image_shape=IMG)),
    "swin": ("SwinTransformerBackbone", dict(image_shape=IMG, embed_dim=96, depths=[2, 2], num_heads=[3, 6],
                                             window_size=4)),
    "mit_b0": ("MiTBackbone", dict(
        layerwise_depths=[1, 1, 1, 1], num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
        layerwise_sr_ratios=[8, 4, 2, 1], max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2], hidden_dims=[32, 64, 160, 256], image_shape=IMG)),
    "xception": ("XceptionBackbone", dict(
        stackwise_conv_filters=[[32, 64], [128, 128], [256, 256], [728, 728], [728, 1024], [1536, 2048]],
        stackwise_pooling=[False, True, True, True, True, False], image_shape=(71, 71, 3))),
    "vitdet": ("ViTDetBackbone", dict(hidden_size=256, num_layers=2, intermediate_dim=512, num_heads=4,
                                      global_attention_layer_indices=[1], image_shape=IMG, patch_size=16,
                                      window_size=2)),
    "gemma3_text": ("Gemma3Backbone", dict(vocabulary_size=1000, image_size=64, num_layers=2,
                                           num_query_heads=4, num_key_value_heads=1, hidden_dim=256,
                                           intermediate_dim=512, head_dim=64)),
    "moonshine": ("MoonshineBackbone", dict(vocabulary_size=1000, filter_dim=256, encoder_num_layers=2,
                                            decoder_num_layers=2, hidden_dim=256, intermediate_dim=512,
                                            encoder_num_heads=4, decoder_num_heads=4)),
}


def hub_pair(backbone: str, vision: str, text: str, **extra) -> Callable[[], Any]:
    """A two-tower keras_hub model (CLIP, SigLIP) from small vision and text encoders."""

    def build():
        import keras

        from ._env import import_keras_hub

        keras_hub = import_keras_hub()
        keras.utils.set_random_seed(0)
        m = keras_hub.models
        vis = getattr(m, vision)(patch_size=16, hidden_dim=256, num_layers=2, num_heads=4, intermediate_dim=512,
                                 image_shape=IMG)
        txt = getattr(m, text)(vocabulary_size=1000, embedding_dim=256, hidden_dim=256, num_layers=2,
                               num_heads=4, intermediate_dim=512)
        return getattr(m, backbone)(vis, txt, **extra)

    return build


PAIRS: dict[str, Callable[[], Any]] = {
    "clip": hub_pair("CLIPBackbone", "CLIPVisionEncoder", "CLIPTextEncoder", projection_dim=256),
    "siglip": hub_pair("SigLIPBackbone", "SigLIPVisionEncoder", "SigLIPTextEncoder"),
}
