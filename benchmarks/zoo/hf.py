"""transformers architectures built with ``from_config`` from each model type's own default config, shrunk.

Nothing is downloaded: the config class's defaults are the real model's (BERT-base, Llama-7B...), and
:func:`shrink` keeps its conventions (``initializer_range``, activation, tying, norm kind) while making it
small enough to build in seconds: 2 layers, width 256 (the width the init std depends on stays a realistic
one), 4 heads, a 1,000-token vocabulary, at most 4 experts. Nested configs (text/vision/audio towers,
encoder/decoder) are shrunk the same way.
"""

from __future__ import annotations

from typing import Any

# one table: config attribute -> the value a small model gets (only ever lowered, never raised)
SHRINK: dict[str, int] = {
    # depth
    "num_hidden_layers": 2, "n_layer": 2, "n_layers": 2, "num_layers": 2, "encoder_layers": 2,
    "decoder_layers": 2, "num_encoder_layers": 2, "num_decoder_layers": 2, "num_hidden_groups": 1,
    "num_decoder_blocks": 2,
    # width
    "hidden_size": 256, "n_embd": 256, "d_model": 256, "dim": 256, "embed_dim": 256, "n_embed": 256,
    "embedding_size": 256, "word_embed_proj_dim": 256, "projection_dim": 256,
    # feed-forward
    "intermediate_size": 512, "n_inner": 512, "d_ff": 512, "encoder_ffn_dim": 512, "decoder_ffn_dim": 512,
    "ffn_dim": 512, "hidden_dim": 512, "moe_intermediate_size": 256, "shared_expert_intermediate_size": 256,
    # attention
    "num_attention_heads": 4, "n_head": 4, "n_heads": 4, "encoder_attention_heads": 4,
    "decoder_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "d_kv": 64,
    # experts
    "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "num_experts_per_tok": 2,
    "moe_num_experts": 4, "n_shared_experts": 1,
    # vocabulary and positions
    "vocab_size": 1000, "max_position_embeddings": 512, "n_positions": 512, "max_seq_len": 512,
}
TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
             "decoder_start_token_id", "mask_token_id", "unk_token_id")


def _token_ids(config) -> list[int]:
    ids = []
    for key in TOKEN_IDS:
        value = getattr(config, key, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        ids += [v for v in values if isinstance(v, int)]
    return ids


def shrink(config, overrides: dict[str, Any] | None = None):
    """Lower every size attribute of ``config`` (and of its nested configs) to the :data:`SHRINK` value."""
    from transformers import PretrainedConfig

    for key, small in SHRINK.items():
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > small:
            setattr(config, key, small)
    if isinstance(getattr(config, "vocab_size", None), int):
        config.vocab_size = max([config.vocab_size] + [i + 1 for i in _token_ids(config)])
    for key in ("depths", "num_layers_per_stage", "encoder_depths", "block_repeats"):
        value = getattr(config, key, None)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
            setattr(config, key, [1] * len(value))
    for key in list(vars(config)):
        sub = getattr(config, key, None)
        if isinstance(sub, PretrainedConfig):
            shrink(sub)
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    return config


def build(model_type: str, auto: str = "AutoModel", overrides: dict[str, Any] | None = None):
    """``transformers.<auto>.from_config(shrink(default config of model_type))`` in eval mode."""
    from ._env import prepare_torch

    prepare_torch()
    import torch
    import transformers
    from transformers import AutoConfig

    torch.manual_seed(0)
    config = shrink(AutoConfig.for_model(model_type), overrides)
    if getattr(config, "auto_map", None):
        raise ValueError(f"{model_type}: remote code (auto_map) is never run")
    return getattr(transformers, auto).from_config(config).eval()


# model type -> (auto class, config overrides, input shape hint with batch 1 or None to let initcheck infer it).
# Every model type of transformers' AutoModel mapping whose default config, shrunk, builds in seconds on CPU
# to at most 20M parameters; left out: types that need extra packages (natten, detectron2, scipy), that fail
# to build from their default config, that would fetch a backbone from a hub (edgetam), and vision-language
# or speech composites whose towers are entries of their own (llava, idefics, blip, voxtral...).
MODEL_TYPES: dict[str, tuple[str, dict[str, Any], tuple[int, ...] | None]] = {
    "afmoe": ("AutoModelForCausalLM", {}, (1, 16)),
    "aimv2": ("AutoModel", {}, None),
    "albert": ("AutoModel", {}, (1, 16)),
    "altclip": ("AutoModel", {}, None),
    "apertus": ("AutoModelForCausalLM", {}, (1, 16)),
    "audio-spectrogram-transformer": ("AutoModel", {}, None),
    "bamba": ("AutoModelForCausalLM", {}, (1, 16)),
    "bart": ("AutoModelForCausalLM", {}, (1, 16)),
    "beit": ("AutoModel", {}, (1, 3, 224, 224)),
    "bert": ("AutoModelForCausalLM", {}, (1, 16)),
    "bert-generation": ("AutoModelForCausalLM", {}, (1, 16)),
    "big_bird": ("AutoModelForCausalLM", {}, (1, 16)),
    "bigbird_pegasus": ("AutoModelForCausalLM", {}, (1, 16)),
    "biogpt": ("AutoModelForCausalLM", {}, (1, 16)),
    "bit": ("AutoModel", {}, None),
    "blenderbot": ("AutoModelForCausalLM", {}, (1, 16)),
    "blenderbot-small": ("AutoModelForCausalLM", {}, (1, 16)),
    "bloom": ("AutoModelForCausalLM", {}, (1, 16)),
    "bridgetower": ("AutoModel", {}, None),
    "bros": ("AutoModel", {}, (1, 16)),
    "camembert": ("AutoModelForCausalLM", {}, (1, 16)),
    "canine": ("AutoModel", {}, None),
    "chinese_clip": ("AutoModel", {}, None),
    "clap": ("AutoModel", {}, None),
    "clip": ("AutoModel", {}, None),
    "clipseg": ("AutoModel", {}, None),
    "clvp": ("AutoModel", {}, None),
    "convbert": ("AutoModel", {}, (1, 16)),
    "convnext": ("AutoModel", {}, (1, 3, 224, 224)),
    "convnextv2": ("AutoModel", {}, (1, 3, 224, 224)),
    "cpmant": ("AutoModelForCausalLM", {}, (1, 16)),
    "ctrl": ("AutoModelForCausalLM", {}, (1, 16)),
    "cvt": ("AutoModel", {}, None),
    "data2vec-audio": ("AutoModel", {}, (1, 16)),
    "data2vec-text": ("AutoModelForCausalLM", {}, (1, 16)),
    "data2vec-vision": ("AutoModel", {}, (1, 3, 224, 224)),
    "deberta": ("AutoModel", {}, (1, 16)),
    "deberta-v2": ("AutoModel", {}, (1, 16)),
    "decision_transformer": ("AutoModel", {}, (1, 16)),
    "deepseek_v2": ("AutoModelForCausalLM", {}, (1, 16)),
    "deepseek_v3": ("AutoModelForCausalLM", {}, (1, 16)),
    "deepseek_v4": ("AutoModelForCausalLM", {}, (1, 16)),
    "deit": ("AutoModel", {}, (1, 3, 224, 224)),
    "dia": ("AutoModel", {}, None),
    "diffllama": ("AutoModelForCausalLM", {}, (1, 16)),
    "dinov2": ("AutoModel", {}, (1, 3, 224, 224)),
    "dinov2_with_registers": ("AutoModel", {}, (1, 3, 224, 224)),
    "dinov3_convnext": ("AutoModel", {}, (1, 3, 224, 224)),
    "dinov3_vit": ("AutoModel", {}, (1, 3, 224, 224)),
    "distilbert": ("AutoModel", {}, (1, 16)),
    "doge": ("AutoModelForCausalLM", {}, (1, 16)),
    "donut-swin": ("AutoModel", {}, (1, 3, 224, 224)),
    "dpr": ("AutoModel", {}, (1, 16)),
    "dpt": ("AutoModel", {}, (1, 3, 384, 384)),
    "electra": ("AutoModelForCausalLM", {}, (1, 16)),
    "encodec": ("AutoModel", {}, None),
    "ernie": ("AutoModelForCausalLM", {}, (1, 16)),
    "ernie4_5": ("AutoModelForCausalLM", {}, (1, 16)),
    "ernie4_5_moe": ("AutoModelForCausalLM", {}, (1, 16)),
    "esmc": ("AutoModel", {}, (1, 16)),
    "exaone4": ("AutoModelForCausalLM", {}, (1, 16)),
    "exaone_moe": ("AutoModelForCausalLM", {}, (1, 16)),
    "falcon": ("AutoModelForCausalLM", {}, (1, 16)),
    "falcon_h1": ("AutoModelForCausalLM", {}, (1, 16)),
    "falcon_mamba": ("AutoModelForCausalLM", {}, (1, 16)),
    "flaubert": ("AutoModel", {}, (1, 16)),
    "flava": ("AutoModel", {}, None),
    "fnet": ("AutoModel", {}, (1, 16)),
    "focalnet": ("AutoModel", {}, (1, 3, 224, 224)),
    "fsmt": ("AutoModel", {}, (1, 16)),
    "gemma": ("AutoModelForCausalLM", {}, (1, 16)),
    "gemma2": ("AutoModelForCausalLM", {}, (1, 16)),
    "gemma3": ("AutoModelForCausalLM", {}, None),
    "gemma3n_audio": ("AutoModel", {}, (1, 16)),
    "gemma4_audio": ("AutoModel", {}, None),
    "glm4_moe": ("AutoModelForCausalLM", {}, (1, 16)),
    "glm4_moe_lite": ("AutoModelForCausalLM", {}, (1, 16)),
    "glm_image_vqmodel": ("AutoModel", {}, None),
    "glpn": ("AutoModel", {}, None),
    "gpt-sw3": ("AutoModelForCausalLM", {}, (1, 16)),
    "gpt2": ("AutoModelForCausalLM", {}, (1, 16)),
    "gpt_bigcode": ("AutoModelForCausalLM", {}, (1, 16)),
    "gpt_neo": ("AutoModelForCausalLM", {}, (1, 16)),
    "gpt_neox": ("AutoModelForCausalLM", {}, (1, 16)),
    "gpt_neox_japanese": ("AutoModelForCausalLM", {}, (1, 16)),
    "gpt_oss": ("AutoModelForCausalLM", {}, (1, 16)),
    "granite": ("AutoModelForCausalLM", {}, (1, 16)),
    "granitemoe": ("AutoModelForCausalLM", {}, (1, 16)),
    "granitemoe_swa": ("AutoModelForCausalLM", {}, (1, 16)),
    "granitemoehybrid": ("AutoModelForCausalLM", {}, (1, 16)),
    "granitemoeshared": ("AutoModelForCausalLM", {}, (1, 16)),
    "grounding-dino": ("AutoModel", {}, None),
    "helium": ("AutoModelForCausalLM", {}, (1, 16)),
    "hgnet_v2": ("AutoModel", {}, None),
    "hiera": ("AutoModel", {}, None),
    "hubert": ("AutoModel", {}, (1, 16)),
    "hy_v3": ("AutoModelForCausalLM", {}, (1, 16)),
    "hyperclovax": ("AutoModelForCausalLM", {}, (1, 16)),
    "ibert": ("AutoModel", {}, (1, 16)),
    "ijepa": ("AutoModel", {}, (1, 3, 224, 224)),
    "imagegpt": ("AutoModel", {}, (1, 16)),
    "jamba": ("AutoModelForCausalLM", {}, (1, 16)),
    "jetmoe": ("AutoModelForCausalLM", {}, (1, 16)),
    "jina_embeddings_v3": ("AutoModel", {}, (1, 16)),
    "laguna": ("AutoModelForCausalLM", {}, (1, 16)),
    "layoutlm": ("AutoModel", {}, (1, 16)),
    "layoutlmv3": ("AutoModel", {}, (1, 16)),
    "led": ("AutoModel", {}, (1, 16)),
    "levit": ("AutoModel", {}, (1, 3, 224, 224)),
    "lfm2": ("AutoModelForCausalLM", {}, (1, 16)),
    "lilt": ("AutoModel", {}, (1, 16)),
    "llama": ("AutoModelForCausalLM", {}, (1, 16)),
    "llama4": ("AutoModelForCausalLM", {}, None),
    "longformer": ("AutoModel", {}, (1, 16)),
    "longt5": ("AutoModel", {}, (1, 16)),
    "lw_detr": ("AutoModel", {}, None),
    "lxmert": ("AutoModel", {}, (1, 16)),
    "m2m_100": ("AutoModel", {}, (1, 16)),
    "mamba": ("AutoModelForCausalLM", {}, (1, 16)),
    "mamba2": ("AutoModelForCausalLM", {}, (1, 16)),
    "marian": ("AutoModelForCausalLM", {}, (1, 16)),
    "markuplm": ("AutoModel", {}, (1, 16)),
    "mask2former": ("AutoModel", {}, None),
    "maskformer-swin": ("AutoModel", {}, (1, 3, 224, 224)),
    "mbart": ("AutoModelForCausalLM", {}, (1, 16)),
    "megatron-bert": ("AutoModelForCausalLM", {}, (1, 16)),
    "mellum": ("AutoModelForCausalLM", {}, (1, 16)),
    "metaclip_2": ("AutoModel", {}, None),
    "mimo_v2_flash": ("AutoModelForCausalLM", {}, (1, 16)),
    "minicpm3": ("AutoModelForCausalLM", {}, (1, 16)),
    "minimax": ("AutoModelForCausalLM", {}, (1, 16)),
    "ministral3": ("AutoModelForCausalLM", {}, (1, 16)),
    "mistral": ("AutoModelForCausalLM", {}, (1, 16)),
    "mistral4": ("AutoModel", {}, (1, 16)),
    "mixtral": ("AutoModelForCausalLM", {}, (1, 16)),
    "mlcd": ("AutoModel", {}, (1, 3, 336, 336)),
    "mobilebert": ("AutoModel", {}, (1, 16)),
    "mobilenet_v1": ("AutoModel", {}, (1, 3, 224, 224)),
    "mobilenet_v2": ("AutoModel", {}, (1, 3, 224, 224)),
    "mobilevit": ("AutoModel", {}, (1, 3, 256, 256)),
    "mobilevitv2": ("AutoModel", {}, (1, 3, 256, 256)),
    "moonshine": ("AutoModel", {}, (1, 16)),
    "moshi": ("AutoModelForCausalLM", {}, None),
    "mpnet": ("AutoModel", {}, (1, 16)),
    "mpt": ("AutoModelForCausalLM", {}, None),
    "mra": ("AutoModel", {}, (1, 16)),
    "mt5": ("AutoModel", {}, (1, 16)),
    "mvp": ("AutoModelForCausalLM", {}, (1, 16)),
    "nanochat": ("AutoModelForCausalLM", {}, (1, 16)),
    "nemotron_h": ("AutoModelForCausalLM", {}, (1, 16)),
    "nllb-moe": ("AutoModel", {}, (1, 16)),
    "nomic_bert": ("AutoModel", {}, (1, 16)),
    "nystromformer": ("AutoModel", {}, (1, 16)),
    "oneformer": ("AutoModel", {}, None),
    "openai-gpt": ("AutoModelForCausalLM", {}, (1, 16)),
    "opt": ("AutoModelForCausalLM", {}, (1, 16)),
    "owlv2": ("AutoModel", {}, None),
    "owlvit": ("AutoModel", {}, None),
    "parakeet_ctc": ("AutoModel", {}, None),
    "patchtsmixer": ("AutoModel", {}, None),
    "patchtst": ("AutoModel", {}, None),
    "pegasus": ("AutoModelForCausalLM", {}, (1, 16)),
    "pegasus_x": ("AutoModel", {}, (1, 16)),
    "persimmon": ("AutoModelForCausalLM", {}, (1, 16)),
    "phi": ("AutoModelForCausalLM", {}, (1, 16)),
    "phi3": ("AutoModelForCausalLM", {}, (1, 16)),
    "phimoe": ("AutoModelForCausalLM", {}, (1, 16)),
    "pixio": ("AutoModel", {}, (1, 3, 256, 256)),
    "plbart": ("AutoModelForCausalLM", {}, (1, 16)),
    "poolformer": ("AutoModel", {}, None),
    "pvt": ("AutoModel", {}, (1, 3, 224, 224)),
    "pvt_v2": ("AutoModel", {}, None),
    "qwen2": ("AutoModelForCausalLM", {}, (1, 16)),
    "qwen2_moe": ("AutoModelForCausalLM", {}, (1, 16)),
    "qwen3": ("AutoModelForCausalLM", {}, (1, 16)),
    "qwen3_5": ("AutoModelForCausalLM", {}, None),
    "qwen3_5_moe": ("AutoModelForCausalLM", {}, None),
    "qwen3_moe": ("AutoModelForCausalLM", {}, (1, 16)),
    "qwen3_next": ("AutoModelForCausalLM", {}, (1, 16)),
    "recurrent_gemma": ("AutoModelForCausalLM", {}, (1, 16)),
    "regnet": ("AutoModel", {}, None),
    "rembert": ("AutoModelForCausalLM", {}, (1, 16)),
    "resnet": ("AutoModel", {}, None),
    "rf_detr": ("AutoModel", {}, None),
    "roberta": ("AutoModelForCausalLM", {}, (1, 16)),
    "roberta-prelayernorm": ("AutoModelForCausalLM", {}, (1, 16)),
    "roc_bert": ("AutoModelForCausalLM", {}, (1, 16)),
    "roformer": ("AutoModelForCausalLM", {}, (1, 16)),
    "rwkv": ("AutoModelForCausalLM", {}, (1, 16)),
    "sam": ("AutoModel", {}, None),
    "seed_oss": ("AutoModelForCausalLM", {}, (1, 16)),
    "segformer": ("AutoModel", {}, None),
    "seggpt": ("AutoModel", {}, None),
    "sew": ("AutoModel", {}, (1, 16)),
    "sew-d": ("AutoModel", {}, (1, 16)),
    "siglip": ("AutoModel", {}, None),
    "siglip2": ("AutoModel", {}, None),
    "solar_open": ("AutoModelForCausalLM", {}, (1, 16)),
    "speecht5": ("AutoModel", {}, None),
    "splinter": ("AutoModel", {}, (1, 16)),
    "squeezebert": ("AutoModel", {}, (1, 16)),
    "stablelm": ("AutoModelForCausalLM", {}, (1, 16)),
    "starcoder2": ("AutoModelForCausalLM", {}, (1, 16)),
    "swiftformer": ("AutoModel", {}, (1, 3, 224, 224)),
    "swin": ("AutoModel", {}, (1, 3, 224, 224)),
    "swin2sr": ("AutoModel", {}, (1, 3, 64, 64)),
    "swinv2": ("AutoModel", {}, (1, 3, 224, 224)),
    "switch_transformers": ("AutoModel", {}, (1, 16)),
    "t5": ("AutoModel", {}, (1, 16)),
    "t5gemma": ("AutoModel", {}, None),
    "t5gemma2": ("AutoModel", {}, None),
    "tapas": ("AutoModel", {}, (1, 16)),
    "textnet": ("AutoModel", {}, None),
    "timesfm": ("AutoModel", {}, None),
    "timesfm2_5": ("AutoModel", {}, None),
    "timesformer": ("AutoModel", {}, (1, 3, 224, 224)),
    "udop": ("AutoModel", {}, (1, 3, 224, 224)),
    "umt5": ("AutoModel", {}, (1, 16)),
    "unispeech": ("AutoModel", {}, (1, 16)),
    "unispeech-sat": ("AutoModel", {}, (1, 16)),
    "univnet": ("AutoModel", {}, None),
    "uvdoc": ("AutoModel", {}, None),
    "vaultgemma": ("AutoModelForCausalLM", {}, (1, 16)),
    "videomae": ("AutoModel", {}, (1, 3, 224, 224)),
    "vilt": ("AutoModel", {}, (1, 3, 384, 384)),
    "visual_bert": ("AutoModel", {}, (1, 16)),
    "vit": ("AutoModel", {}, (1, 3, 224, 224)),
    "vit_mae": ("AutoModel", {}, (1, 3, 224, 224)),
    "vit_msn": ("AutoModel", {}, (1, 3, 224, 224)),
    "vitdet": ("AutoModel", {}, (1, 3, 224, 224)),
    "vivit": ("AutoModel", {}, (1, 3, 224, 224)),
    "wav2vec2": ("AutoModel", {}, (1, 16)),
    "wav2vec2-bert": ("AutoModel", {}, None),
    "wav2vec2-conformer": ("AutoModel", {}, None),
    "whisper": ("AutoModelForCausalLM", {}, None),
    "xglm": ("AutoModelForCausalLM", {}, (1, 16)),
    "xlm": ("AutoModelForCausalLM", {}, (1, 16)),
    "xlm-roberta": ("AutoModelForCausalLM", {}, (1, 16)),
    "xlm-roberta-xl": ("AutoModelForCausalLM", {}, (1, 16)),
    "xlnet": ("AutoModelForCausalLM", {}, (1, 16)),
    "xmod": ("AutoModelForCausalLM", {}, (1, 16)),
    "yolos": ("AutoModel", {}, None),
    "yoso": ("AutoModel", {}, (1, 16)),
    "zaya": ("AutoModelForCausalLM", {}, (1, 16)),
}
