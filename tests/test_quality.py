"""The demo must produce recognisable digits: train with `hw5-train`'s digits defaults (the `make demo` run),
sample 200 images, and have a classifier fitted on the training split label them."""
import json
import numpy as np
import torch
from PIL import Image
from conftest import run
from hw5_diffusion.data import digits_recognisability, is_recognisable, pil_to_tensor


def test_demo_sized_training_gives_recognisable_digits(tmp_path):
    run(["hw5-train", "--data", "digits", "--out", tmp_path / "demo", "--sample-n", "0"], timeout=3600)
    cfg = json.loads((tmp_path / "demo" / "config.json").read_text())
    assert cfg["train"]["max_steps"] == 1200 and cfg["metrics"]["loss"] < 0.05
    # 250 respaced ancestral steps keep the suite short; the demo itself samples with all 1000
    run(["hw5-sample", "--ckpt", tmp_path / "demo", "--n", "200", "--steps", "250", "--out", tmp_path / "s"], timeout=3600)
    x = torch.stack([pil_to_tensor(Image.open(p)) for p in sorted((tmp_path / "s").glob("0*.png"))])
    assert x.shape == (200, 1, 16, 16)
    r = digits_recognisability(x)
    print("recognisability of 200 samples:", r)
    assert is_recognisable(r), r
