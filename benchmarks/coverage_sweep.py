"""Graph-coverage sweep over stock architectures, in memory (issue 13).

For every model: how many weight layers (conv, linear, attention, recurrent) get no activation from the
graph and why; whether the reported trainable parameters equal the framework's own count; for Keras,
whether layer names are identical between the built model and the same model reloaded from ``.keras``.
Models are built with random weights from constructors or small configs; nothing is downloaded.

    python benchmarks/coverage_sweep.py --framework torch [--sample 12 --seed 0] [--json out.json]
    python benchmarks/coverage_sweep.py --framework keras

``make coverage`` runs both frameworks in full; tests/test_coverage_sample.py runs a seeded sample.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)  # benchmarks/zoo: where timm, torchvision and keras_hub come from

WEIGHT_KIND_PREFIXES = ("conv", "depthwise_conv", "conv_transpose", "linear", "attention", "bilinear",
                        "lstm", "gru", "rnn")


def is_weight_layer(layer) -> bool:
    """Conv, linear, attention and recurrent layers: the ones whose scale the activation decides."""
    return layer.kind.startswith(WEIGHT_KIND_PREFIXES) and len(layer.shape) >= 2


@dataclass
class Result:
    name: str
    framework: str
    ok: bool = False
    error: str | None = None
    seconds: float = 0.0
    weight_layers: int = 0
    unknown: int = 0
    unknown_reasons: dict[str, int] = field(default_factory=dict)
    unknown_layers: list[str] = field(default_factory=list)
    unexplained: int = 0  # unknown activation without a reason
    params_reported: int = 0
    params_framework: int = 0
    names_built: int = 0
    names_mismatch: list[str] = field(default_factory=list)  # Keras: names differing after reload
    graph_notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ torch
TIMM_MODELS = [
    "resnet18", "resnet26d", "resnet50", "resnext26ts", "seresnet18", "seresnext26d_32x4d", "resnetv2_50",
    "resnet18d", "wide_resnet50_2", "resnest14d", "res2net50_14w_8s", "regnetx_002", "regnety_002",
    "regnetz_b16", "densenet121", "dla34", "dpn48b", "vgg11", "vgg11_bn", "inception_v3", "inception_v4",
    "inception_resnet_v2", "xception41", "legacy_xception", "mobilenetv2_050", "mobilenetv3_small_050",
    "mobilenetv3_large_100", "mobilenetv4_conv_small", "mnasnet_050", "fbnetc_100", "ghostnet_050",
    "ghostnetv2_100", "efficientnet_b0", "efficientnet_lite0", "efficientnetv2_rw_t", "tf_efficientnet_b0",
    "mixnet_s", "tinynet_e", "lcnet_050", "hardcorenas_a", "rexnet_100", "hrnet_w18_small", "cspresnet50",
    "cspdarknet53", "darknet17", "dm_nfnet_f0", "nf_resnet26", "nfnet_l0", "repvgg_a0", "mobileone_s0",
    "fastvit_t8", "convnext_atto", "convnextv2_atto", "convnext_nano", "edgenext_xx_small", "efficientformer_l1",
    "efficientformerv2_s0", "levit_128s", "vit_tiny_patch16_224", "vit_small_patch16_224",
    "vit_base_patch32_224", "vit_small_patch16_18x2_224", "deit_tiny_patch16_224",
    "deit_tiny_distilled_patch16_224", "beit_base_patch16_224", "beitv2_base_patch16_224",
    "eva02_tiny_patch14_224", "cait_xxs24_224", "xcit_nano_12_p16_224", "crossvit_tiny_240", "pit_ti_224",
    "tnt_s_patch16_224", "twins_svt_small", "twins_pcpvt_small", "pvt_v2_b0", "swin_tiny_patch4_window7_224",
    "swinv2_tiny_window8_256", "swinv2_cr_tiny_224", "maxvit_nano_rw_256", "maxxvit_rmlp_nano_rw_256",
    "coatnet_nano_rw_224", "coat_lite_tiny", "convit_tiny", "poolformer_s12", "poolformerv2_s12",
    "convformer_s18", "caformer_s18", "mixer_s32_224", "gmixer_12_224", "resmlp_12_224", "gmlp_ti16_224",
    "sequencer2d_s", "visformer_tiny", "volo_d1_224", "nest_tiny", "gcvit_xxtiny", "mvitv2_tiny",
    "davit_tiny", "focalnet_tiny_srf", "inception_next_tiny", "rdnet_tiny", "tiny_vit_5m_224",
    "efficientvit_b0", "efficientvit_m0", "fasternet_t0", "hgnet_tiny", "hgnetv2_b0", "mambaout_femto",
    "starnet_s1", "repghostnet_050", "vovnet39a", "ese_vovnet19b_dw", "selecsls42b", "tresnet_m",
    "gernet_s", "sebotnet33ts_256", "halonet26t", "lambda_resnet26t", "eca_resnet33ts", "cs3darknet_s", "vit_relpos_small_patch16_224", "vit_srelpos_small_patch16_224",
    "flexivit_small", "vit_medium_patch16_gap_256", "samvit_base_patch16", "hiera_tiny_224",
    "vitamin_small_224", "nextvit_small", "ghostnetv3_050", "csatv2", "shvit_s1", "fastvit_mci0",
    "test_vit", "test_efficientnet", "test_convnext", "test_byobnet", "test_resnet", "test_nfnet",
]

# transformers model types → small config values (keys absent from a config are skipped)
SMALL = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "vocab_size": 99, "max_position_embeddings": 64, "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64,
    "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
    "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_layers": 2,
    "num_heads": 2, "d_ff": 64, "d_kv": 16, "num_decoder_layers": 2, "ffn_dim": 64, "embed_dim": 32,
    "num_key_value_heads": 1, "hidden_dim": 64, "dim": 32, "n_heads": 2, "n_layers": 2, "embedding_size": 32,
    "projection_dim": 32, "word_embed_proj_dim": 32, "head_dim": 16, "num_local_experts": 2,
    "num_experts": 2, "moe_intermediate_size": 32, "num_experts_per_tok": 1, "shared_expert_intermediate_size": 32,
    "max_source_positions": 32, "max_target_positions": 32, "num_mel_bins": 16, "image_size": 32,
    "patch_size": 8, "num_channels": 3, "conv_dim": [16, 16], "conv_kernel": [10, 3], "conv_stride": [5, 2],
    "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2, "d_inner": 64, "d_head": 16,
    "mem_len": 0, "num_encoder_layers": 2, "encoder_hidden_size": 32, "first_k_dense_replace": 0,
}
VISION_SMALL = {"hidden_sizes": [16, 32], "depths": [1, 1], "embedding_size": 16, "embed_dim": 16,
                "num_heads": [1, 2], "image_size": 64, "window_size": 4, "hidden_size": 32}
TEXT_MODEL_TYPES = [
    "bert", "roberta", "distilbert", "albert", "electra", "xlm-roberta", "camembert", "deberta", "deberta-v2",
    "mpnet", "squeezebert", "mobilebert", "convbert", "ernie", "roformer", "megatron-bert",
    "nystromformer", "canine", "xlnet", "gpt2", "gpt_neo", "gptj", "gpt_neox", "bloom", "opt", "llama", "mistral",
    "mixtral", "qwen2", "qwen2_moe", "qwen3", "phi", "phi3", "gemma", "gemma2", "falcon", "stablelm", "starcoder2",
    "olmo", "cohere", "codegen", "ctrl", "t5", "mt5", "bart", "mbart", "marian", "pegasus",
    "blenderbot-small", "led", "fsmt", "whisper", "wav2vec2", "hubert", "data2vec-audio",
    "wavlm", "sew", "unispeech", "speech_to_text", "granite", "helium", "glm", "persimmon", "biogpt",
    "xglm", "mvp", "plbart", "m2m_100", "nllb-moe", "switch_transformers", "umt5", "longt5", "ibert",
]
VISION_MODEL_TYPES = [
    "vit", "deit", "beit", "dinov2", "swin", "swinv2", "convnext", "convnextv2", "resnet", "regnet",
    "mobilenet_v1", "mobilenet_v2", "efficientnet", "levit", "poolformer", "cvt", "segformer", "dpt",
    "yolos", "vit_mae", "data2vec-vision", "bit", "focalnet", "pvt", "pvt_v2", "mobilevit",
    "mobilevitv2", "clip_vision_model", "siglip_vision_model", "textnet", "hiera",
]


def _small_config(model_type: str):
    from transformers import AutoConfig

    cfg = AutoConfig.for_model(model_type)
    values = dict(SMALL)
    if model_type in VISION_MODEL_TYPES:
        values.update(VISION_SMALL)
    for key, value in values.items():
        if key in cfg.to_dict():
            current = getattr(cfg, key, None)
            if isinstance(current, (list, tuple)) and not isinstance(value, (list, tuple)):
                continue
            if isinstance(value, (list, tuple)) and isinstance(current, (list, tuple)):
                value = list(value)[:len(current)] + [value[-1]] * max(0, len(current) - len(value))
                if key in ("hidden_sizes", "depths", "num_heads") and len(current) > 2:
                    value = list(values[key]) + [values[key][-1]] * (len(current) - 2)
            setattr(cfg, key, value)
    if model_type in ("wav2vec2", "hubert", "data2vec-audio", "wavlm", "sew", "unispeech"):
        cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride = [16, 16], [10, 3], [5, 2]
        cfg.num_feat_extract_layers = 2
    if hasattr(cfg, "layer_types") and isinstance(getattr(cfg, "layer_types"), list):
        cfg.layer_types = cfg.layer_types[:2]
    return cfg


# config values a model type needs on top of the zoo's shrink, because some of its sizes are derived from
# others: EfficientNet's final BatchNorm has ``hidden_dim`` channels but its conv ``round_filters(1280)``, so
# shrinking ``hidden_dim`` alone breaks the model; the B0 layout keeps both at 1280 (the default is B7's).
SHRINK_OVERRIDES: dict[str, dict[str, Any]] = {
    "efficientnet": {"width_coefficient": 1.0, "depth_coefficient": 1.0, "hidden_dim": 1280, "image_size": 224},
}


def _transformers_builder(model_type: str) -> Callable[[], Any]:
    def build():
        import torch

        torch.manual_seed(0)
        try:  # the CORPUS zoo's shrink keeps token ids, tying and norm kinds consistent
            from zoo.hf import build as zoo_build
        except ImportError:
            zoo_build = None
        if zoo_build is not None:
            return zoo_build(model_type, overrides=SHRINK_OVERRIDES.get(model_type)).eval()
        from transformers import AutoModel

        return AutoModel.from_config(_small_config(model_type)).eval()
    return build


def _timm_builder(name: str) -> Callable[[], Any]:
    def build():
        import torch
        from zoo._env import import_timm

        timm = import_timm()

        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False, num_classes=10).eval()
    return build


# torchvision constructors (imported through the zoo's CPU shim); Inception and GoogLeNet keep their auxiliary
# heads, which run only in training mode
TORCHVISION_MODELS = {
    "inception_v3": {"aux_logits": True, "init_weights": True}, "googlenet": {"aux_logits": True, "init_weights": True},
    "resnet18": {}, "mobilenet_v3_small": {}, "shufflenet_v2_x0_5": {}, "squeezenet1_1": {}, "mnasnet0_5": {},
    "regnet_y_400mf": {}, "efficientnet_b0": {}, "convnext_tiny": {}, "swin_t": {}, "vit_b_32": {},
    "densenet121": {}, "alexnet": {},
}


def _torchvision_builder(name: str, kwargs: dict[str, Any]) -> Callable[[], Any]:
    def build():
        import torch
        from zoo._env import import_torchvision

        tv = import_torchvision()
        torch.manual_seed(0)
        return getattr(tv.models, name)(weights=None, num_classes=10, **kwargs).eval()
    return build


def torch_models() -> list[tuple[str, Callable[[], Any]]]:
    out = [(f"timm/{n}", _timm_builder(n)) for n in TIMM_MODELS]
    out += [(f"torchvision/{n}", _torchvision_builder(n, kw)) for n, kw in TORCHVISION_MODELS.items()]
    out += [(f"transformers/{t}", _transformers_builder(t)) for t in TEXT_MODEL_TYPES + VISION_MODEL_TYPES]
    return out


def torch_trainable(module) -> int:
    """Trainable floating-point parameters, a parametrized tensor counted as the one effective tensor the
    report holds for it (weight norm's ``original0``/``original1`` are one weight of the weight's size)."""
    from torch.nn.utils import parametrize

    total = sum(p.numel() for p in module.parameters() if p.requires_grad and p.is_floating_point())
    for sub in module.modules():
        if not parametrize.is_parametrized(sub):
            continue
        for attr, plist in sub.parametrizations.items():
            originals = [p for p in plist.parameters() if p.requires_grad and p.is_floating_point()]
            if originals:
                total += getattr(sub, attr).numel() - sum(p.numel() for p in originals)
    return total


def torch_context(module, model) -> None:
    """What the check does for an in-memory module (judge._context's torch branch)."""
    from initcheck.frameworks.torch.graph import torch_graph
    from initcheck.graph import annotate, explain_unknown

    graph, why = torch_graph(module, model, None)
    if graph is not None:
        annotate(model, graph)
        if why:
            model.graph_notes.append(f"context from a traced forward pass ({why})")
    else:
        model.graph_notes.append(f"no graph: {why}; activations unknown")
        explain_unknown(model, f"no graph: {why}")


def run_torch(name: str, build: Callable[[], Any]) -> Result:
    from initcheck.load import load

    r = Result(name, "torch")
    module = build()
    model = load(module)
    torch_context(module, model)
    _score(r, model)
    r.params_framework = torch_trainable(module)
    r.ok = True
    return r


# ------------------------------------------------------------------------------------------------ keras
KERAS_APPLICATIONS = {
    "Xception": 71, "VGG16": 32, "VGG19": 32, "ResNet50": 32, "ResNet101": 32, "ResNet152": 32,
    "ResNet50V2": 32, "ResNet101V2": 32, "ResNet152V2": 32, "InceptionV3": 75, "InceptionResNetV2": 75,
    "MobileNet": 32, "MobileNetV2": 32, "MobileNetV3Small": 32, "MobileNetV3Large": 32, "DenseNet121": 32,
    "DenseNet169": 32, "DenseNet201": 32, "NASNetMobile": 32, "EfficientNetB0": 32, "EfficientNetB1": 32,
    "EfficientNetB2": 32, "EfficientNetB3": 32, "EfficientNetB4": 32, "EfficientNetB5": 32,
    "EfficientNetB6": 32, "EfficientNetB7": 32, "EfficientNetV2B0": 32, "EfficientNetV2B1": 32,
    "EfficientNetV2B2": 32, "EfficientNetV2B3": 32, "EfficientNetV2S": 32, "EfficientNetV2M": 32,
    "ConvNeXtTiny": 32, "ConvNeXtSmall": 32, "ConvNeXtBase": 32,
}
# keras_hub backbone constructor arguments by name; every backbone takes the ones it names
HUB_ARGS = {
    "vocabulary_size": 64, "vocab_size": 64, "num_layers": 2, "num_heads": 2, "num_query_heads": 2,
    "num_key_value_heads": 1, "num_attention_heads": 2, "hidden_dim": 16, "intermediate_dim": 32,
    "embedding_dim": 16, "head_dim": 8, "num_experts": 2, "moe_intermediate_dim": 16,
    "shared_expert_intermediate_dim": 16, "shared_expert_intermediate_size": 16, "top_k": 1,
    "filter_dim": 16, "encoder_num_layers": 1, "decoder_num_layers": 1, "encoder_num_heads": 2,
    "decoder_num_heads": 2, "num_layers_enc": 1, "num_layers_dec": 1, "head_size": 8, "hidden_size": 16,
    "max_sequence_length": 32, "encoder_hidden_dim": 16, "encoder_intermediate_dim": 32,
    "encoder_num_attention_heads": 2, "encoder_num_key_value_heads": 1, "encoder_head_dim": 8,
    "encoder_layer_types": ["full_attention"], "decoder_hidden_dim": 16, "decoder_intermediate_dim": 32,
    "decoder_num_attention_heads": 2, "decoder_num_key_value_heads": 1, "decoder_head_dim": 8,
    "decoder_layer_types": ["full_attention"], "max_decoder_sequence_length": 32,
}
HUB_TEXT = ["Albert", "Bart", "Bert", "Bloom", "DebertaV3", "DistilBert", "ESM2", "ESM", "Electra", "FNet",
            "Falcon", "GPT2", "GPTNeoX", "Gemma", "GptOss", "Llama3", "Llama", "Mistral", "Mixtral", "OPT",
            "Phi3", "Qwen2", "Qwen3", "Qwen3Moe", "Qwen", "QwenMoe", "RWKV7", "Roberta", "RoformerV2", "T5",
            "Whisper", "XLMRoberta", "XLNet", "Moonshine", "T5Gemma", "EdRec"]


def _hub_vision() -> dict[str, Callable[[], Any]]:
    import keras_hub as kh

    m = kh.models
    vit = lambda shape=(32, 32, 3): dict(image_shape=shape, patch_size=8, num_layers=2, num_heads=2,  # noqa: E731
                                         hidden_dim=16)

    def clip():
        v = m.CLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
                                image_shape=(32, 32, 3))
        t = m.CLIPTextEncoder(vocabulary_size=64, embedding_dim=16, hidden_dim=16, num_layers=2, num_heads=2,
                              intermediate_dim=32, max_sequence_length=16)
        return m.CLIPBackbone(v, t, projection_dim=16)

    def siglip():
        v = m.SigLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
                                  image_shape=(32, 32, 3))
        t = m.SigLIPTextEncoder(vocabulary_size=64, embedding_dim=16, hidden_dim=16, num_layers=2, num_heads=2,
                                intermediate_dim=32, max_sequence_length=16)
        return m.SigLIPBackbone(v, t)

    return {
        "ViT": lambda: m.ViTBackbone(**vit(), mlp_dim=32),
        "DeiT": lambda: m.DeiTBackbone(**vit(), intermediate_dim=32),
        "DINOV2": lambda: m.DINOV2Backbone(patch_size=8, num_layers=2, hidden_dim=16, num_heads=2,
                                           intermediate_dim=32, image_shape=(32, 32, 3)),
        "DINOV3": lambda: m.DINOV3Backbone(patch_size=8, num_layers=2, hidden_dim=16, num_heads=2,
                                           intermediate_dim=32, image_shape=(32, 32, 3)),
        "SwinTransformer": lambda: m.SwinTransformerBackbone(image_shape=(32, 32, 3), embed_dim=16, depths=[2, 2],
                                                             num_heads=[2, 2], window_size=4, patch_size=2),
        "VGG": lambda: m.VGGBackbone(stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16],
                                     image_shape=(32, 32, 3)),
        "DenseNet": lambda: m.DenseNetBackbone(stackwise_num_repeats=[2, 2], image_shape=(32, 32, 3)),
        "ResNet": lambda: m.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                                           stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
                                           stackwise_num_strides=[1, 2], block_type="bottleneck_block",
                                           image_shape=(32, 32, 3)),
        "MiT": lambda: m.MiTBackbone(layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
                                     layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0,
                                     layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2],
                                     hidden_dims=[16, 32], image_shape=(32, 32, 3)),
        "Xception": lambda: m.XceptionBackbone(stackwise_conv_filters=[[8, 16], [16, 16]],
                                               stackwise_pooling=[False, True], image_shape=(64, 64, 3)),
        "CLIP": clip,
        "SigLIP": siglip,
    }


def keras_models() -> list[tuple[str, Callable[[], Any]]]:
    out: list[tuple[str, Callable[[], Any]]] = []
    for name, size in KERAS_APPLICATIONS.items():
        out.append((f"keras.applications/{name}", _app_builder(name, size)))
    from zoo._env import ZooDependencyMissing, import_keras_hub

    try:
        import_keras_hub()
    except ZooDependencyMissing as e:
        print(f"keras_hub not importable ({e}); keras_hub models skipped", file=sys.stderr)
        return out
    for name in HUB_TEXT:
        out.append((f"keras_hub/{name}", _hub_builder(name)))
    for name, build in _hub_vision().items():
        out.append((f"keras_hub/{name}", build))
    return out


def _app_builder(name: str, size: int) -> Callable[[], Any]:
    def build():
        import keras

        keras.utils.set_random_seed(0)
        return getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    return build


def _hub_builder(name: str) -> Callable[[], Any]:
    def build():
        import inspect

        import keras
        import keras_hub

        keras.utils.set_random_seed(0)
        cls = getattr(keras_hub.models, f"{name}Backbone")
        params = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in HUB_ARGS.items() if k in params})
    return build


def keras_trainable(obj) -> int:
    import numpy as np

    seen: dict[int, Any] = {id(v): v for v in obj.trainable_weights}
    return int(sum(int(np.prod(v.shape)) for v in seen.values()))


def run_keras(name: str, build: Callable[[], Any], reload: bool = True) -> Result:
    import keras

    from initcheck.load import load

    r = Result(name, "keras")
    obj = build()
    model = load(obj)
    _score(r, model)
    r.params_framework = keras_trainable(obj)
    built_names = [layer.name for layer in model.layers]
    r.names_built = len(built_names)
    if reload:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.keras")
            obj.save(path)
            again = keras.saving.load_model(path, compile=False)
            reloaded = [layer.name for layer in load(again).layers]
        r.names_mismatch = sorted(set(built_names) ^ set(reloaded))[:20]
        if not r.names_mismatch and built_names != reloaded:
            r.names_mismatch = ["(same names, different order)"]
    r.ok = True
    return r


# ------------------------------------------------------------------------------------------------ scoring
def _score(r: Result, model) -> None:
    weight_layers = [layer for layer in model.layers if is_weight_layer(layer)]
    r.weight_layers = len(weight_layers)
    reasons: Counter[str] = Counter()
    for layer in weight_layers:
        if layer.context.activation is None:
            r.unknown += 1
            why = getattr(layer.context, "activation_unknown_reason", None)
            if not why:
                r.unexplained += 1
                why = "(no reason given)"
            reasons[why] += 1
            if len(r.unknown_layers) < 8:
                r.unknown_layers.append(f"{layer.name} [{layer.kind}]: {why}")
    r.unknown_reasons = dict(reasons)
    # trainable tensors the report holds (frozen ones, like sinusoidal position tables, are reported too but
    # the framework's count of trainable parameters leaves them out)
    # a parametrized weight is reported as its effective tensor (computed, so not itself a trainable leaf)
    r.params_reported = sum(p.tensor.size for layer in model.layers for p in layer.params
                            if _trainable(p.native) or (layer.attrs.get("parametrization") and p.role == "weight"))
    r.graph_notes = list(model.graph_notes)


def _trainable(native) -> bool:
    if native is None:
        return True
    if hasattr(native, "requires_grad"):
        return bool(native.requires_grad)
    return bool(getattr(native, "trainable", True))


def sweep(framework: str, names: list[str] | None = None, sample: int | None = None, seed: int = 0,
          reload: bool = True, verbose: bool = True) -> list[Result]:
    """Run the sweep for one framework; ``sample`` picks that many models with ``random.Random(seed)``."""
    if framework == "torch":
        from zoo._env import prepare_torch

        prepare_torch()  # torchvision/timm from .cache/zoo-site (`make zoo-deps`), CPU-safe import
        models, runner = torch_models(), run_torch
    else:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        models = keras_models()
        runner = lambda n, b: run_keras(n, b, reload)  # noqa: E731
    if names:
        models = [(n, b) for n, b in models if any(x in n for x in names)]
    if sample is not None:
        models = sorted(random.Random(seed).sample(models, min(sample, len(models))))
    results = []
    for name, build in models:
        t0 = time.perf_counter()
        try:
            r = runner(name, build)
        except Exception as e:  # a model that does not build or load is a result too, with its reason
            r = Result(name, framework, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        r.seconds = round(time.perf_counter() - t0, 2)
        results.append(r)
        if verbose:
            print(_line(r), flush=True)
        gc.collect()
    return results


def _line(r: Result) -> str:
    if not r.ok:
        return f"FAIL  {r.name}: {r.error}"
    parts = [f"{r.unknown}/{r.weight_layers} unknown"]
    if r.params_reported != r.params_framework:
        parts.append(f"params {r.params_reported} != {r.params_framework}")
    if r.names_mismatch:
        parts.append(f"names differ after reload: {', '.join(r.names_mismatch[:4])}")
    head = "ok  " if r.unknown == 0 and len(parts) == 1 else "--  "
    text = f"{head}  {r.name}: {'; '.join(parts)} ({r.seconds:.1f}s)"
    if r.unknown:
        text += "\n        " + "\n        ".join(r.unknown_layers[:4])
    return text


def totals(results: list[Result]) -> dict:
    ok = [r for r in results if r.ok]
    layers = sum(r.weight_layers for r in ok)
    unknown = sum(r.unknown for r in ok)
    reasons: Counter[str] = Counter()
    for r in ok:
        reasons.update(r.unknown_reasons)
    return {
        "models": len(results), "traced": len(ok), "failed": [f"{r.name}: {r.error}" for r in results if not r.ok],
        "weight_layers": layers, "unknown": unknown,
        "unknown_percent": round(100.0 * unknown / layers, 2) if layers else 0.0,
        "unexplained": sum(r.unexplained for r in ok),
        "param_mismatch": [f"{r.name}: {r.params_reported} != {r.params_framework}" for r in ok
                           if r.params_reported != r.params_framework],
        "name_mismatch": [r.name for r in ok if r.names_mismatch],
        "unknown_reasons": dict(reasons.most_common()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--framework", choices=("torch", "keras"), required=True)
    ap.add_argument("--only", nargs="*", help="substrings of model names to run")
    ap.add_argument("--sample", type=int, help="a seeded random sample of this many models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-reload", action="store_true", help="Keras: skip the save/reload name check")
    ap.add_argument("--json", help="write every result and the totals here")
    args = ap.parse_args(argv)
    results = sweep(args.framework, args.only, args.sample, args.seed, not args.no_reload)
    t = totals(results)
    print(f"\n{args.framework}: {t['traced']}/{t['models']} models built and traced; weight layers with unknown "
          f"activation {t['unknown']}/{t['weight_layers']} ({t['unknown_percent']} %), unexplained "
          f"{t['unexplained']}; parameter-count mismatches {len(t['param_mismatch'])}; "
          f"Keras name mismatches {len(t['name_mismatch'])}")
    for key in ("failed", "param_mismatch", "name_mismatch"):
        for item in t[key]:
            print(f"  {key}: {item}")
    for why, n in t["unknown_reasons"].items():
        print(f"  unknown ×{n}: {why}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"totals": t, "results": [asdict(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
