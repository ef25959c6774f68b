"Classifier-free guidance: the wrapper in-process, and hw5-train --cfg / hw5-sample --guidance / hw5-eval --guidance as real processes."
import json, shutil
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import run
from test_cli import _fails
from hw5_diffusion.cfg import ClassifierFreeGuidance
from hw5_diffusion.ddim import DDIMScheduler
from hw5_diffusion.ddpm import DDPMScheduler, generate
from hw5_diffusion.unet import digits_unet
from hw5_diffusion.checkpoints import save_checkpoint
from hw5_diffusion.training import TrainConfig, Trainer, step_label_drop


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = digits_unet(num_classes=10, ch=8).eval()
    with torch.no_grad():
        for p in m.parameters(): p.add_(torch.randn_like(p) * 0.02)  # zero-initialised layers would hide the class
    return m


def _batch_sizes(m, f):
    sizes = []
    h = m.register_forward_pre_hook(lambda mod, args: sizes.append(len(args[0])))
    try: out = f()
    finally: h.remove()
    return out, sizes


@pytest.mark.parametrize("sampler", [DDPMScheduler, DDIMScheduler])
def test_guidance_off_is_one_forward_and_plain_conditional_sampling(model, sampler):
    y = torch.tensor([0, 4, 9])
    plain = generate(model, sampler(), 3, steps=5, seed=2, class_labels=y, progress=False)
    off, sizes = _batch_sizes(model, lambda: generate(ClassifierFreeGuidance(model, 0.0), sampler(), 3, steps=5, seed=2, class_labels=y, progress=False))
    assert torch.equal(off, plain) and sizes == [3] * 5
    on, sizes = _batch_sizes(model, lambda: generate(ClassifierFreeGuidance(model, 2.0), sampler(), 3, steps=5, seed=2, class_labels=y, progress=False))
    assert sizes == [6] * 5 and not torch.equal(on, plain)
    again = generate(ClassifierFreeGuidance(model, 3.0, "diffusers"), sampler(), 3, steps=5, seed=2, class_labels=y, progress=False)
    assert torch.equal(on, again)   # same seed, same images; s = 3 is w = 2


def test_labels_checked_once_per_sampling_run_not_every_step(model, monkeypatch):
    "The range check reads the labels back from the device; once per label tensor keeps it out of the step loop."
    import hw5_diffusion.cfg as cfg
    calls = []
    real = cfg.check_labels
    monkeypatch.setattr(cfg, "check_labels", lambda y, k: calls.append(1) or real(y, k))
    g = ClassifierFreeGuidance(model, 2.0)
    generate(g, DDIMScheduler(), 3, steps=6, seed=0, class_labels=torch.tensor([1, 2, 3]), progress=False)
    assert len(calls) == 1
    generate(g, DDIMScheduler(), 3, steps=6, seed=0, class_labels=torch.tensor([1, 2, 30]) % 10, progress=False)
    assert len(calls) == 2                                   # new labels, checked again
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 9\]"):
        generate(g, DDIMScheduler(), 3, steps=6, seed=0, class_labels=torch.tensor([1, 2, 10]), progress=False)


def test_guided_prediction_is_eq5_of_the_null_class_pass(model):
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        cond, null = model(x, 300, y), model(x, 300, torch.full_like(y, 10))
        guided = ClassifierFreeGuidance(model, 1.5)(x, torch.full((4,), 300), y)
    assert torch.allclose(guided, 2.5 * cond - 1.5 * null, atol=1e-5)
    assert not torch.allclose(cond, null, atol=1e-4)


def test_trainer_drops_labels_to_the_null_class_as_the_step_seed_says():
    c = TrainConfig(class_conditional=True, cond_drop_prob=0.3, max_steps=2, batch_size=64, warmup_steps=0, ema_decay=0.0,
                    unet=dict(ch=8), sample_n=0, eval_n=0, seed=5)
    seen = []
    torch.manual_seed(0)
    m = digits_unet(num_classes=10, ch=8)
    m.register_forward_pre_hook(lambda mod, args: seen.append(args[2].clone()))
    Trainer(c, model=m, device="cpu", progress=False).fit()
    assert len(seen) == 2
    for step, y in enumerate(seen):
        assert torch.equal(y == 10, step_label_drop(5, step, 64, 0.3))
    assert 0.15 < torch.cat(seen).eq(10).float().mean() < 0.45


@pytest.fixture(scope="module")
def cfg_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("cfg") / "run"
    run(["hw5-train", "--out", out, "--cfg", "--p-uncond", "0.2", "--max-steps", "6", "--batch-size", "16", "--sample-n", "0",
         "--set", "unet.ch=8", "--set", "eval_n=0"])
    return out


def _pngs(d): return [np.asarray(Image.open(p)) for p in sorted(d.glob("0*.png"))]


def test_cli_train_cfg_and_sample_guided(cfg_ckpt, tmp_path):
    cfg = json.loads((cfg_ckpt / "config.json").read_text())
    assert cfg["unet"]["num_classes"] == 10 and cfg["train"]["class_conditional"] and cfg["train"]["cond_drop_prob"] == 0.2
    s = ["hw5-sample", "--ckpt", cfg_ckpt, "--n", "10", "--steps", "4", "--sampler", "ddim"]
    p = run(s + ["--class-label", "all", "--guidance", "2", "--out", tmp_path / "g"])
    assert "wrote 10 images" in p.stdout and "guidance 2 (paper)" in p.stderr
    g = tmp_path / "g" / "w-2"                                  # one folder per weight, as hw5-eval --guidance writes
    assert Image.open(tmp_path / "g" / "w-2.png").size[0] > Image.open(tmp_path / "g" / "w-2.png").size[1]  # 10 columns, 1 row
    s = s[:-1] + ["ddpm"]                                       # ddim's clip-consistent ε changes w = 0 too; ddpm's step does not
    run(s + ["--guidance", "0", "--out", tmp_path / "w0"])
    run(s + ["--out", tmp_path / "plain"])                     # a conditional checkpoint: classes cycle, no guidance
    assert len(_pngs(tmp_path / "w0" / "w-0")) == 10
    assert all((a == b).all() for a, b in zip(_pngs(tmp_path / "w0" / "w-0"), _pngs(tmp_path / "plain")))
    assert not all((a == b).all() for a, b in zip(_pngs(g), _pngs(tmp_path / "plain")))


def test_sample_and_eval_take_guidance_weights_alike(cfg_ckpt, tmp_path):
    "hw5-sample --guidance W [W ...] as hw5-eval: one run per weight, in OUT/w-W/, each the same as that weight alone."
    s = ["hw5-sample", "--ckpt", cfg_ckpt, "--n", "4", "--steps", "3"]
    p = run(s + ["--guidance", "0", "2", "--out", tmp_path / "both"])
    assert "guidance 0 2 (paper)" in p.stderr and p.stdout.count("wrote 4 images") == 2
    assert sorted(q.name for q in (tmp_path / "both").iterdir()) == ["w-0", "w-0.png", "w-2", "w-2.png"]
    run(s + ["--guidance", "2", "--out", tmp_path / "one"])
    assert all((a == b).all() for a, b in zip(_pngs(tmp_path / "both" / "w-2"), _pngs(tmp_path / "one" / "w-2")))
    assert len(_pngs(tmp_path / "one" / "w-2")) == 4
    e = run(["hw5-eval", "--ckpt", cfg_ckpt, "--n", "4", "--steps", "3", "--guidance", "0", "2", "--out", tmp_path / "e",
             "--cache", tmp_path / "cache"])
    assert sorted(q.name for q in (tmp_path / "e").iterdir() if q.is_dir()) == ["w-0", "w-2"], e.stderr


def test_cli_guidance_refusals(cfg_ckpt, tmp_path):
    "Two refusals as real processes (the CLI chapter checks the label range, negative w, diffusers' s < 1, --p-uncond in-process)."
    o = ["--out", tmp_path / "o", "--steps", "2"]
    save_checkpoint(tmp_path / "uncond", digits_unet(ch=8), DDPMScheduler(), step=0)
    _fails(["hw5-sample", "--ckpt", tmp_path / "uncond", "--guidance", "2"] + o, "needs a class-conditional checkpoint")
    no_drop = tmp_path / "no_drop"
    shutil.copytree(cfg_ckpt, no_drop, ignore=shutil.ignore_patterns("checkpoints", "tb"))
    cfg = json.loads((no_drop / "config.json").read_text()); cfg["train"]["cond_drop_prob"] = 0.0
    (no_drop / "config.json").write_text(json.dumps(cfg))
    _fails(["hw5-sample", "--ckpt", no_drop, "--guidance", "1"] + o, "trained without label dropout")
    assert not (tmp_path / "o").exists()


def test_eval_guidance_table(cfg_ckpt, tmp_path):
    p = run(["hw5-eval", "--ckpt", cfg_ckpt, "--out", tmp_path / "e", "--n", "20", "--sampler", "ddim", "--steps", "3",
             "--guidance", "0", "1.5", "--cache", tmp_path / "cache", "--no-pngs"])
    rs = json.loads((tmp_path / "e" / "guidance.json").read_text())
    assert [r["guidance"] for r in rs] == [0.0, 1.5] and all(0 <= r["class_accuracy"] <= 1 and r["class_diversity"] > 0 for r in rs)
    assert "| w = 1.5 |" in p.stdout and (tmp_path / "e" / "guidance.png").is_file()
    assert json.loads((tmp_path / "e" / "w-1.5" / "metrics.json").read_text())["guidance"] == 1.5
