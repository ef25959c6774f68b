"""diffusers interop (issue 16, items 3 and 4): diffusers' schedulers drive `generate` on a trained digits model and give
digits; our U-Net exported as a diffusers UNet2DModel computes the same outputs; `hw5-export` writes a folder diffusers'
pipelines load; diffusers folders work as `--ckpt`; our schedulers' `from_config` takes diffusers configs."""
import inspect, json
import pytest
import torch
import diffusers
from hw5_diffusion.cli import SAMPLERS, image_seeds, make_scheduler, load_for_sampling, sample, sample_main, sample_parser, evaluate, eval_parser, samples_fid
from hw5_diffusion.checkpoints import CheckpointError, save_checkpoint
from hw5_diffusion.data import digits_recognisability
from hw5_diffusion.ddpm import DDPMScheduler, generate
from hw5_diffusion.ddim import DDIMScheduler
from hw5_diffusion.interop import ExportError, to_diffusers_unet, export_main
from hw5_diffusion.unet import digits_unet, default_unet

# digits-FID of 150 images at 20 steps from the session's digits model (300 steps × 64 images), measured on the CPU:
# euler 67.6, euler-ancestral 61.5, heun 56.9 (39 NFE), dpm-solver++ 54.3, unipc 54.5, pndm 59.6 (29 NFE), lms 57.3
# (ours: ddim 55.2); 150 real training digits: 21.2. Before generate clipped x̂_0 for the samplers that cannot (issue 30),
# Euler, PNDM and LMS gave 170.8, 145.7 and 169.6 on a model this short-trained. Broken ones score ~700: uniform noise 675,
# Euler without init_noise_sigma and scale_model_input (generate before issue 16) 706 with 2 classes. Bounds: about twice
# the measured value, below the unclipped samplers' and a fifth of broken.
FID_BOUND = {"euler": 150, "euler-ancestral": 150, "heun": 150, "dpm-solver++": 150, "unipc": 150, "pndm": 150, "lms": 150}


@pytest.mark.parametrize("sampler", list(FID_BOUND))
def test_diffusers_scheduler_makes_digits(digits_ckpt, sampler):
    model, scheduler, _ = load_for_sampling(digits_ckpt, "cpu", sampler)
    assert type(scheduler) is SAMPLERS[sampler]
    x = generate(model, scheduler, 150, steps=20, seed=0, progress=False)
    fid = samples_fid(x)[0]
    r = digits_recognisability(x)
    print(f"{sampler}: digits-FID {fid:.1f}, recognisability {r}")
    assert fid < FID_BOUND[sampler] and r["classes"] >= 8, (fid, r)  # the classifier is confident even on noise: classes count


def test_make_scheduler_takes_the_checkpoint_schedule():
    cfg = DDPMScheduler(beta_schedule="cosine", num_train_timesteps=500, prediction_type="v_prediction", clip_sample=False).config
    for name in SAMPLERS:
        s = make_scheduler(name, cfg)
        assert s.config["num_train_timesteps"] == 500 and s.config["prediction_type"] == "v_prediction"
        assert s.config["beta_schedule"] in ("cosine", "squaredcos_cap_v2")
        if "clip_sample" in s.config: assert s.config["clip_sample"] is False
        if "thresholding" in s.config: assert s.config["thresholding"] is False
    for name in ("dpm-solver++", "unipc"):  # clip_sample to [-1, 1] is their thresholding with sample_max_value 1
        s = make_scheduler(name, DDPMScheduler().config)
        assert s.config["thresholding"] and s.config["sample_max_value"] == 1.0
    # diffusers' squaredcos_cap_v2 is our cosine: the same ᾱ
    ours, theirs = DDPMScheduler.from_config(cfg), make_scheduler("euler", cfg)
    assert torch.allclose(ours.alphas_cumprod.double(), theirs.alphas_cumprod.double(), rtol=1e-5)


def _random(m, std=0.1):
    torch.manual_seed(0)
    for p in m.parameters(): p.data.normal_(0, std)  # the output layers start at zero
    return m.eval()


@pytest.mark.parametrize("kw", [{}, {"num_classes": 10}])
def test_export_digits_unet_same_outputs(kw):
    model = _random(digits_unet(**kw))
    unet, _ = to_diffusers_unet(model)
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(8, 1, 16, 16, generator=g), torch.tensor([0, 1, 10, 99.5, 400, 777, 998, 999])
    y = torch.arange(8) % 11 if kw else None
    with torch.no_grad(): d = (model(x, t, y) - unet(x, t, class_labels=y).sample).abs().max().item()
    print("digits max abs diff", d)
    assert d < 1e-4


def test_export_hw5_128_unet_same_outputs():
    "The HW5 128² configuration, on the CPU, batch 1."
    model = _random(default_unet(3, 128), 0.02)
    unet, _ = to_diffusers_unet(model)
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(): d = (model(x, torch.tensor([613])) - unet(x, torch.tensor([613])).sample).abs().max().item()
    print("128² max abs diff", d)
    assert d < 1e-4


@pytest.mark.parametrize("kw,msg", [(dict(num_classes=10, class_cond="cross_attention"), "cross-attention class conditioning"),
                                    (dict(out_channels=2), "a learned variance"),
                                    (dict(resblock_updown=True), "BigGAN up/down ResBlocks"),
                                    (dict(ch_mult=(2, 4), attn_levels=(1,)), "ch_mult[0] = 2")])
def test_what_does_not_map_is_one_clear_error(kw, msg):
    with pytest.raises(ExportError, match="does not map to a diffusers UNet2DModel") as e: to_diffusers_unet(digits_unet(**kw))
    assert msg in str(e.value)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    model = _random(digits_unet(ch=8), 0.05)
    save_checkpoint(d / "run", model, DDPMScheduler(beta_end=0.03), data="digits", step=7)
    with pytest.raises(SystemExit) as e: export_main(["--ckpt", str(d / "run"), "--to", "diffusers", str(d / "out")])
    assert e.value.code == 0
    return model, d


@pytest.mark.parametrize("pipeline", [diffusers.DDPMPipeline, diffusers.DDIMPipeline])
def test_exported_folder_loads_in_diffusers_pipelines(exported, pipeline):
    model, d = exported
    pipe = pipeline.from_pretrained(d / "out"); pipe.set_progress_bar_config(disable=True)
    assert pipe.scheduler.config.beta_end == 0.03
    images = pipe(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 16, 16, 1)
    if pipeline is diffusers.DDIMPipeline:  # our DDIM with diffusers' default ε̂ on our model (diffusers' leading stride = ours here)
        ours = generate(model, DDIMScheduler(beta_end=0.03), 2, steps=5, eta=0.0, seed=0, progress=False, use_clipped_model_output=False)
        assert abs(float(torch.as_tensor(images).permute(0, 3, 1, 2).mul(2).sub(1).sub(ours).abs().max())) < 1e-3


def test_export_refuses_to_overwrite_and_untranslatable(exported, tmp_path, capsys):
    _, d = exported
    with pytest.raises(SystemExit) as e: export_main(["--ckpt", str(d / "run"), "--to", "diffusers", str(d / "out")])
    assert e.value.code == 2 and "exists: pass --overwrite" in capsys.readouterr().err
    save_checkpoint(tmp_path / "xattn", digits_unet(num_classes=10, class_cond="cross_attention"), DDPMScheduler())
    with pytest.raises(SystemExit) as e: export_main(["--ckpt", str(tmp_path / "xattn"), "--to", "diffusers", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "cross-attention class conditioning" in err


def test_exported_folder_samples_in_hw5_sample(exported, capsys):
    model, d = exported
    x = sample(sample_parser().parse_args(["--ckpt", str(d / "out"), "--n", "2", "--steps", "10", "--sampler", "ddim", "--out", str(d / "s")]))
    assert (x - generate(model, DDIMScheduler(beta_end=0.03), 2, steps=10, eta=0.0, seed=image_seeds(0, 0, 2), progress=False)).abs().max() < 1e-3


def random_unet2d():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                                 down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                                 norm_num_groups=4, attention_head_dim=8)


@pytest.mark.parametrize("kind", ["pipeline", "unet"])
def test_diffusers_folders_as_ckpt(tmp_path, kind, capsys):
    "hw5-sample and hw5-eval on a folder written by save_pretrained of a randomly initialised model."
    unet = random_unet2d()
    if kind == "pipeline":
        diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(num_train_timesteps=200)).save_pretrained(tmp_path / "f")
    else: unet.save_pretrained(tmp_path / "f")
    for sampler in ("ddpm", "euler", "unipc"):
        x = sample(sample_parser().parse_args(["--ckpt", str(tmp_path / "f"), "--n", "2", "--steps", "5", "--sampler", sampler,
                                               "--out", str(tmp_path / sampler)]))
        assert x.shape == (2, 1, 16, 16) and len(list((tmp_path / sampler).glob("0*.png"))) == 2
    assert load_for_sampling(tmp_path / "f")[1].num_train_timesteps == (200 if kind == "pipeline" else 1000)
    r = evaluate(eval_parser().parse_args(["--ckpt", str(tmp_path / "f"), "--out", str(tmp_path / "e"), "--n", "8", "--steps", "3",
                                           "--sampler", "dpm-solver++", "--no-pngs"]))
    assert r["n"] == 8 and r["sampler"] == "dpm-solver++" and r["fid"] > 0


def test_diffusers_folder_with_an_unmappable_scheduler_is_one_clear_error(tmp_path):
    unet = random_unet2d()
    betas = torch.linspace(1e-4, 0.02, 1000).tolist()
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(trained_betas=betas)).save_pretrained(tmp_path / "f")
    with pytest.raises(CheckpointError, match="trained_betas"): load_for_sampling(tmp_path / "f")


def test_from_config_accepts_diffusers_configs(tmp_path):
    for cls in (diffusers.DDPMScheduler, diffusers.DDIMScheduler, diffusers.PNDMScheduler, diffusers.EulerDiscreteScheduler):
        theirs = cls(beta_end=0.015, prediction_type="v_prediction")
        theirs.save_pretrained(tmp_path / cls.__name__)
        saved = json.loads((tmp_path / cls.__name__ / "scheduler_config.json").read_text())
        for ours in (DDPMScheduler, DDIMScheduler):
            for config in (dict(theirs.config), saved):
                s = ours.from_config(config)
                assert s.config["beta_end"] == 0.015 and s.config["prediction_type"] == "v_prediction"
    base = dict(diffusers.DDPMScheduler().config)
    # dynamic thresholding at sample_max_value 1 is clipping to [-1, 1] (its scale is clamped to 1), and is taken as that
    assert DDPMScheduler.from_config({**base, "thresholding": True, "clip_sample": False}).config["clip_sample"] is True
    for bad, msg in [({"trained_betas": [0.01] * 1000}, "trained_betas"), ({"thresholding": True, "sample_max_value": 2.0}, "dynamic thresholding"),
                     ({"rescale_betas_zero_snr": True}, "zero terminal SNR")]:
        with pytest.raises(ValueError, match=msg): DDPMScheduler.from_config({**base, **bad})
    with pytest.raises(ValueError, match="unexpected keyword argument 'bogus'"): DDPMScheduler.from_config({**DDPMScheduler().config, "bogus": 1})


@pytest.mark.parametrize("ours", [DDPMScheduler, DDIMScheduler])
def test_pipeline_saved_with_our_scheduler_reloads(tmp_path, ours):
    "Our scheduler goes into a pipeline as its diffusers twin (same class name, same config) and comes back unchanged."
    from hw5_diffusion.interop import diffusers_scheduler
    s = ours(beta_schedule="cosine", prediction_type="sample", timestep_spacing="trailing")
    pipe = diffusers.DDPMPipeline(unet=random_unet2d(), scheduler=diffusers_scheduler(s))
    pipe.save_pretrained(tmp_path / "p")
    back = diffusers.DDPMPipeline.from_pretrained(tmp_path / "p")
    assert type(back.scheduler).__name__ == ours.__name__
    again = ours.from_config(back.scheduler.config)  # diffusers names our cosine squaredcos_cap_v2: the same β
    assert again.config["beta_schedule"] == "squaredcos_cap_v2" and {**again.config, "beta_schedule": "cosine"} == s.config
    assert torch.equal(again.alphas_cumprod, s.alphas_cumprod)
    assert torch.allclose(back.scheduler.alphas_cumprod.double(), s.alphas_cumprod.double(), rtol=1e-5)


def _no_warnings(capsys): capsys.readouterr()


def test_steps_offset_folder_samples(tmp_path, capsys):
    "A valid diffusers folder with steps_offset=1 (leading spacing): every step count it allows samples, the one past T is one line."
    diffusers.DDPMPipeline(unet=random_unet2d(), scheduler=diffusers.DDPMScheduler(steps_offset=1)).save_pretrained(tmp_path / "f")
    model, s, _ = load_for_sampling(tmp_path / "f")
    assert s.config["steps_offset"] == 1
    theirs = diffusers.DDPMScheduler.from_pretrained(tmp_path / "f" / "scheduler")
    for n in (5, 50, 999):
        s.set_timesteps(n); theirs.set_timesteps(n)
        assert s.timesteps.tolist() == theirs.timesteps.tolist() and s.timesteps.max() <= 999
    x = sample(sample_parser().parse_args(["--ckpt", str(tmp_path / "f"), "--n", "1", "--out", str(tmp_path / "s")]))  # the default: all it allows
    assert x.shape == (1, 1, 16, 16) and "ddpm with 999 steps" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: sample_main(["--ckpt", str(tmp_path / "f"), "--n", "1", "--steps", "1000", "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--steps 1000: steps_offset=1" in err and "at most 999" in err


def _ddim_folder(path, **kw):
    unet = random_unet2d()
    for p in unet.parameters(): p.data.normal_(0, 0.05)  # an output of some size, so that the last step shows
    diffusers.DDIMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler(**kw)).save_pretrained(path)
    return path


def test_set_alpha_to_one_false_is_honoured_or_refused(tmp_path, capsys):
    "DDIM with set_alpha_to_one=False samples what DDIMPipeline does; a sampler without that option refuses it in one line."
    f = _ddim_folder(tmp_path / "f", set_alpha_to_one=False)
    x = sample(sample_parser().parse_args(["--ckpt", str(f), "--n", "2", "--steps", "5", "--sampler", "ddim", "--out", str(tmp_path / "s")]))
    pipe = diffusers.DDIMPipeline.from_pretrained(f); pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(s) for s in image_seeds(0, 0, 2)]
    theirs = pipe(batch_size=2, num_inference_steps=5, eta=0.0, use_clipped_model_output=True, generator=gens, output_type="np").images
    theirs = torch.as_tensor(theirs).permute(0, 3, 1, 2) * 2 - 1
    assert (x - theirs).abs().max() < 1e-4   # with set_alpha_to_one taken as True: up to 1.9e-2 apart (issue 31)
    capsys.readouterr()
    for sampler in ("ddpm", "euler"):
        with pytest.raises(SystemExit) as e:
            sample_main(["--ckpt", str(f), "--n", "1", "--steps", "5", "--sampler", sampler, "--out", str(tmp_path / sampler)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and "set_alpha_to_one=False" in err
    f2 = _ddim_folder(tmp_path / "f2", thresholding=True, sample_max_value=2.0)
    with pytest.raises(SystemExit) as e: sample_main(["--ckpt", str(f2), "--n", "1", "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "thresholding" in err


def test_class_conditional_export_runs_in_diffusers_with_labels(tmp_path, capsys):
    "A --cfg model is exported as unet/ + scheduler/ (no DDPMPipeline, which cannot pass labels); the loop on the interop page runs it."
    model = _random(digits_unet(ch=8, num_classes=10), 0.05)
    save_checkpoint(tmp_path / "run", model, DDPMScheduler(), data="digits", step=0)
    with pytest.raises(SystemExit) as e: export_main(["--ckpt", str(tmp_path / "run"), "--to", "diffusers", str(tmp_path / "out")])
    assert e.value.code == 0 and "passes no class labels" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["hw5_diffusion.json", "scheduler", "unet"]
    unet = diffusers.UNet2DModel.from_pretrained(tmp_path / "out" / "unet")
    scheduler = diffusers.DDPMScheduler.from_pretrained(tmp_path / "out" / "scheduler")
    scheduler.set_timesteps(10)
    labels, gens = torch.arange(4) % 10, [torch.Generator().manual_seed(s) for s in image_seeds(0, 0, 4)]
    x = torch.cat([torch.randn(1, 1, 16, 16, generator=g) for g in gens])
    with torch.no_grad():
        for t in scheduler.timesteps: x = scheduler.step(unet(x, t, class_labels=labels).sample, t, x, generator=gens).prev_sample
    ours = sample(sample_parser().parse_args(["--ckpt", str(tmp_path / "out"), "--n", "4", "--steps", "10", "--out", str(tmp_path / "s")]))
    assert (x.clamp(-1, 1) - ours).abs().max() < 1e-3
    unconditional = sample(sample_parser().parse_args(["--ckpt", str(tmp_path / "out"), "--n", "4", "--steps", "10", "--class-label", "3",
                                                       "--out", str(tmp_path / "s3")]))
    assert (unconditional - ours)[:3].abs().max() > 1e-3   # the labels reach the model (images 0-2 change class; the loops agree to 1e-5)


def test_diffusers_swap_is_the_sampler(exported, tmp_path, capsys):
    "X.from_config(pipe.scheduler.config) on the exported folder is hw5-sample --sampler X on the checkpoint: same config, same images."
    model, d = exported
    pipe = diffusers.DDPMPipeline.from_pretrained(d / "out")
    cfg = load_for_sampling(d / "run")[2]["scheduler"]
    for name, cls in SAMPLERS.items():
        if name in ("ddpm", "ddim"): continue
        swap, ours = cls.from_config(pipe.scheduler.config), make_scheduler(name, cfg)
        takes = set(inspect.signature(cls.__init__).parameters) - {"self"}
        assert {k: swap.config[k] for k in takes} == {k: ours.config[k] for k in takes}, name
    for name in ("euler", "dpm-solver++", "pndm"):
        x = sample(sample_parser().parse_args(["--ckpt", str(d / "run"), "--n", "2", "--steps", "8", "--sampler", name, "--out", str(tmp_path / name)]))
        pipe.scheduler = SAMPLERS[name].from_config(pipe.scheduler.config)
        theirs = generate(pipe.unet, pipe.scheduler, 2, steps=8, seed=image_seeds(0, 0, 2), progress=False)
        assert (x - theirs).abs().max() < 1e-3, name   # the two U-Nets agree to 5e-6
    capsys.readouterr()
