import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory):
    """Fresh tiny diffusers folders (deterministic: the same weights as the committed package's source)."""
    from tools.tiny import write_tiny_source

    return write_tiny_source(tmp_path_factory.mktemp("tiny") / "source")


@pytest.fixture(scope="session")
def tiny_package(tiny_source, tmp_path_factory):
    """The tiny package re-exported from scratch (export itself asserts ONNX-vs-PyTorch parity ≤ 1e-4)."""
    from tools.export import export_package
    from tools.tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    out = tmp_path_factory.mktemp("pkg")
    report = export_package(tiny_source, tiny_source / "reverse_unet", tiny_source / "reverse_base", out, "fp32",
                            TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, "tiny-random")
    return out, report
