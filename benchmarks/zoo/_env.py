"""Where the zoo's extra libraries live, and how torchvision is imported on a CPU-only torch.

``make zoo-deps`` installs timm, torchvision and keras-hub with ``--no-deps`` into ``.cache/zoo-site``
(git-ignored), outside the project's virtual environment: torchvision's PyPI wheel is built against
CUDA torch, and an importable-but-broken torchvision inside ``.venv`` would be picked up by
transformers' ``is_torchvision_available()`` in every other test. The zoo appends that folder to
``sys.path`` only when a zoo builder needs it.

torchvision's compiled ops (``torchvision::nms``, ``roi_align``...) need ``libtorch_cuda``; its
Python package registers fake kernels for them at import, which fails when the ops are absent. We
import it with ``torch.library.register_fake`` made a no-op for that one import: every model layer
(conv, linear, norm) is plain torch and works; only detection ops would fail, and the zoo builds no
model that calls them. timm needs torchvision only for data transforms and ``FrozenBatchNorm2d``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ZOO_SITE = ROOT / ".cache" / "zoo-site"


class ZooDependencyMissing(RuntimeError):
    """A zoo library is not installed: run ``make zoo-deps``."""


def add_zoo_site() -> None:
    """Make ``.cache/zoo-site`` importable (appended: the venv's own packages win)."""
    site = str(ZOO_SITE)
    if ZOO_SITE.is_dir() and site not in sys.path:
        sys.path.append(site)


def import_torchvision():
    """torchvision, with its CUDA-only compiled ops left unregistered (see the module docstring)."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    add_zoo_site()
    import torch.library

    register_fake = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision
    except ModuleNotFoundError as exc:
        raise ZooDependencyMissing(f"torchvision is not installed ({exc}); run `make zoo-deps`") from exc
    finally:
        torch.library.register_fake = register_fake
    return torchvision


def prepare_torch() -> None:
    """Import torchvision through the shim when it is installed anywhere (.venv or zoo-site).

    transformers imports torchvision whenever it is installed; done through the shim first, that import
    finds it in ``sys.modules`` instead of failing on the missing compiled ops.
    """
    import importlib.util

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a builder that would fetch anything fails instead
    add_zoo_site()
    if importlib.util.find_spec("torchvision") is not None:
        import_torchvision()


def import_timm():
    """timm (needs torchvision imported first, through :func:`import_torchvision`)."""
    import_torchvision()
    try:
        import timm
    except ModuleNotFoundError as exc:
        raise ZooDependencyMissing(f"timm is not installed ({exc}); run `make zoo-deps`") from exc
    return timm


def import_keras_hub():
    add_zoo_site()
    try:
        import keras_hub
    except ModuleNotFoundError as exc:
        raise ZooDependencyMissing(f"keras_hub is not installed ({exc}); run `make zoo-deps`") from exc
    return keras_hub
