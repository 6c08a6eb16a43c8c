"""torch architectures freshly initialized by their own libraries: timm ``create_model(pretrained=False)``,
torchvision constructors (``weights=None``) and transformers ``from_config`` (see :mod:`.hf`)."""

from __future__ import annotations

from typing import Any, Callable

# timm: one to three small variants (distinct name prefixes) per timm model module, each at most 25M
# parameters, built with pretrained=False and num_classes=100. Value: the input side of the model's
# pretrained config (capped at 256), used for the trace.
TIMM: dict[str, int] = {
    "botnet50ts_256": 256, "sebotnet33ts_256": 256, "eca_botnext26ts_256": 256, "repvgg_b0": 224,
    "gernet_s": 224, "mobileone_s0": 224, "cait_xxs24_224": 224, "coat_tiny": 224,
    "convit_tiny": 224, "convmixer_768_32": 224, "convnext_atto": 224, "convnextv2_atto": 224,
    "cpubone_nano": 224, "crossvit_tiny_240": 240, "csatv2": 256, "cs3darknet_s": 256,
    "cspnext_tiny": 224, "deit_tiny_patch16_224": 224, "densenet121": 224, "densenet169": 224,
    "densenet201": 224, "dla34": 224, "dla60": 224, "dla60x": 224,
    "dpn68": 224, "dpn48b": 224, "dpn68b": 224, "edgenext_small": 256,
    "efficientformer_l1": 224, "efficientformerv2_s0": 224, "tinynet_a": 192, "efficientvim_m1": 224,
    "efficientvit_b0": 224, "efficientvit_m0": 224, "eva02_tiny_patch14_224": 224, "vit_pe_core_tiny_patch16_384": 256,
    "fasternet_t0": 224, "fastvit_s12": 256, "gcvit_xtiny": 224, "ghostnet_050": 224,
    "hardcorenas_a": 224, "hgnet_tiny": 224, "hgnetv2_b0": 224, "hrnet_w18_small": 224,
    "iformer_s": 224, "inception_next_atto": 224, "inception_v3": 256, "lcnetv2_small": 224,
    "levit_128": 224, "lowformer_b0": 224, "mambaout_femto": 224, "maxvit_pico_rw_256": 256,
    "coatnet_pico_rw_224": 224, "caformer_s18": 224, "convformer_s18": 224, "poolformer_s12": 224,
    "gmlp_s16_224": 224, "mixer_s16_224": 224, "mobilenetv3_small_050": 224, "mobilevit_xxs": 256,
    "mvitv2_tiny": 224, "nest_tiny": 224, "nf_regnet_b0": 192, "pit_xs_224": 224,
    "pvt_v2_b0": 224, "rdnet_tiny": 224, "regnety_040_sgn": 224, "regnetx_004_tv": 224,
    "repghostnet_050": 224, "repvit_m1": 224, "res2net50d": 224, "res2next50": 224,
    "res2net50_14w_8s": 224, "resnest14d": 224, "resnest26d": 224, "resnest50d_1s4x24d": 224,
    "resnet18": 224, "resnet18d": 224, "seresnet18": 224, "resnetv2_18": 224,
    "rexnet_100": 224, "legacy_seresnet18": 224, "shvit_s1": 224, "skresnet18": 224,
    "skresnet34": 224, "skresnet50": 224, "starnet_s1": 224, "swiftformer_xs": 224,
    "tiny_vit_5m_224": 224, "tnt_s_patch16_224": 224, "twins_svt_small": 224, "vit_tiny_patch16_224": 224,
    "vit_tiny_r_s16_p8_224": 224, "vit_relpos_small_patch16_224": 224, "ese_vovnet19b_dw": 224, "legacy_xception": 299,
    "xcit_nano_12_p16_224": 224,
}

# torchvision classification/segmentation/video constructors: name -> input shape (batch 1)
TORCHVISION: dict[str, tuple[int, ...]] = {
    "alexnet": (1, 3, 64, 64), "resnet18": (1, 3, 64, 64), "resnet50": (1, 3, 64, 64),
    "resnext50_32x4d": (1, 3, 64, 64), "mobilenet_v2": (1, 3, 64, 64), "mobilenet_v3_small": (1, 3, 64, 64),
    "mobilenet_v3_large": (1, 3, 64, 64), "efficientnet_b0": (1, 3, 64, 64), "efficientnet_v2_s": (1, 3, 64, 64),
    "regnet_y_400mf": (1, 3, 64, 64), "regnet_x_400mf": (1, 3, 64, 64), "shufflenet_v2_x1_0": (1, 3, 64, 64),
    "squeezenet1_1": (1, 3, 64, 64), "mnasnet0_5": (1, 3, 64, 64), "densenet121": (1, 3, 64, 64),
    "googlenet": (1, 3, 64, 64), "inception_v3": (1, 3, 75, 75), "convnext_tiny": (1, 3, 64, 64),
    "swin_t": (1, 3, 64, 64), "swin_v2_t": (1, 3, 64, 64), "maxvit_t": (1, 3, 224, 224),
}
TORCHVISION_EXTRA: dict[str, tuple[str, dict[str, Any], tuple[int, ...]]] = {
    # a small ViT from torchvision's own class (vit_b_16 is 86M parameters)
    "vit_small": ("vision_transformer.VisionTransformer", dict(image_size=64, patch_size=16, num_layers=4,
                  num_heads=4, hidden_dim=256, mlp_dim=1024, num_classes=100), (1, 3, 64, 64)),
    "lraspp_mobilenet_v3_large": ("segmentation.lraspp_mobilenet_v3_large",
                                  dict(weights=None, weights_backbone=None, num_classes=21), (1, 3, 64, 64)),
    "deeplabv3_mobilenet_v3_large": ("segmentation.deeplabv3_mobilenet_v3_large",
                                     dict(weights=None, weights_backbone=None, num_classes=21), (1, 3, 64, 64)),
    "r3d_18": ("video.r3d_18", dict(weights=None, num_classes=100), (1, 3, 4, 32, 32)),
}


def timm_builder(name: str) -> Callable[[], Any]:
    def build():
        import torch

        from ._env import import_timm

        timm = import_timm()
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False, num_classes=100).eval()

    return build


def torchvision_builder(path: str, kwargs: dict[str, Any]) -> Callable[[], Any]:
    def build():
        import torch

        from ._env import import_torchvision

        models = import_torchvision().models
        import importlib

        module_path, _, fn = path.rpartition(".")
        owner = importlib.import_module(f"torchvision.models.{module_path}") if module_path else models
        torch.manual_seed(0)
        return getattr(owner, fn)(**kwargs).eval()

    return build


def torchvision_entries():
    for name, shape in TORCHVISION.items():
        kwargs: dict[str, Any] = {"weights": None, "num_classes": 100}
        if name in ("googlenet", "inception_v3"):
            kwargs.update(aux_logits=True, init_weights=True)
        yield name, torchvision_builder(name, kwargs), shape
    for name, (path, kwargs, shape) in TORCHVISION_EXTRA.items():
        yield name, torchvision_builder(path, kwargs), shape
