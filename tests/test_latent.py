"Latent diffusion: VAE loading (course checkpoint, diffusers folder), the latent cache, and hw5-train/hw5-sample end to end."
import json, shutil
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import run
from hw5_diffusion.checkpoints import CheckpointError
from hw5_diffusion.data import DigitsDataset
from hw5_diffusion.latent import (COURSE_VAE, COURSE_SCALE, KLAutoencoder, LatentVAE, load_vae, encode_dataset, LatentDataset,
                                  state_hash)

SMALL = {**COURSE_VAE, "ch": 16}  # the course's levels and latent channels, narrower


def _course_ckpt(path, cfg=SMALL, drop=None, extra=None):
    "A checkpoint of the course's form: a dict with a `state_dict` (plus LDM's training-only `loss.*` keys)."
    torch.manual_seed(0)
    sd = KLAutoencoder(**cfg).state_dict()
    sd = {k: v for k, v in sd.items() if not (drop and k.startswith(drop))}
    torch.save({"state_dict": {**sd, "loss.logvar": torch.zeros(()), **(extra or {})}, "global_step": 1}, path)
    return sd


def test_course_vae_round_trip_shapes_and_scale(tmp_path, monkeypatch):
    import hw5_diffusion.latent as latent
    monkeypatch.setattr(latent, "COURSE_VAE", SMALL)  # the full-width course VAE is 55 M parameters
    sd = _course_ckpt(tmp_path / "model.ckpt")
    vae = load_vae(tmp_path / "model.ckpt")
    assert vae.scale == COURSE_SCALE == 0.1845 and not vae.is_diffusers
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    z = vae.encode(x)
    assert z.shape == (2, 3, 32, 32) == (2, *vae.latent_shape((3, 128, 128)))
    torch.testing.assert_close(z, 0.1845 * vae.model.encode(x).mean)           # scaled before diffusion
    y = vae.decode(z)
    torch.testing.assert_close(y, vae.model.decode(z / 0.1845).clamp(-1, 1))   # unscaled before decoding
    assert y.shape == x.shape and y.abs().max() <= 1
    assert load_vae(tmp_path / "model.ckpt", scale=0.5).scale == 0.5
    torch.testing.assert_close(vae.model.state_dict()["decoder.conv_out.weight"], sd["decoder.conv_out.weight"])


def test_diffusers_vae_offline(tmp_path):
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    m = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                      latent_channels=4, norm_num_groups=4, sample_size=16, scaling_factor=0.3)
    m.save_pretrained(tmp_path / "vae")
    vae = load_vae(tmp_path / "vae")
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    z = vae.encode(x)
    assert (vae.scale, vae.is_diffusers, z.shape) == (0.3, True, (3, 4, 8, 8))
    torch.testing.assert_close(z, 0.3 * m.encode(x).latent_dist.mean)
    assert vae.decode(z).shape == x.shape
    assert vae.weights_hash == state_hash(m) and vae.posterior(x).kl().shape == (3,)


def test_bad_vae_checkpoints_are_one_clear_error(tmp_path, monkeypatch):
    import hw5_diffusion.latent as latent
    monkeypatch.setattr(latent, "COURSE_VAE", SMALL)
    _course_ckpt(tmp_path / "partial.ckpt", drop="encoder.mid")
    with pytest.raises(CheckpointError, match=r"weights in .*partial.ckpt do not match the model: missing keys \['encoder.mid"):
        load_vae(tmp_path / "partial.ckpt")
    _course_ckpt(tmp_path / "extra.ckpt", extra={"encoder.bogus": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \['encoder.bogus'\]"):
        load_vae(tmp_path / "extra.ckpt")
    _course_ckpt(tmp_path / "wide.ckpt", cfg={**SMALL, "ch": 32})
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_vae(tmp_path / "wide.ckpt")
    torch.save({"weights": {}}, tmp_path / "nostate.ckpt")
    with pytest.raises(CheckpointError, match="has no 'state_dict' entry"):
        load_vae(tmp_path / "nostate.ckpt")
    (tmp_path / "broken.ckpt").write_bytes((tmp_path / "wide.ckpt").read_bytes()[:5000])  # a truncated download
    with pytest.raises(CheckpointError, match="corrupt checkpoint weights .*broken.ckpt"):
        load_vae(tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointError, match="VAE not found: pretrained/model.ckpt"):
        load_vae("pretrained/model.ckpt")


def test_latent_cache_second_run_encodes_nothing(tmp_path):
    torch.manual_seed(0)
    vae = LatentVAE(KLAutoencoder(1, ch=8, ch_mult=(1, 2), num_res_blocks=1, z_channels=1), 2.0)
    ds = DigitsDataset("test")
    first = encode_dataset(vae, ds, tmp_path, progress=False)
    second = encode_dataset(vae, DigitsDataset("test"), tmp_path, progress=False)
    assert (first.encoded, second.encoded, second.path) == (len(ds), 0, first.path)
    lat = LatentDataset(second, vae.scale, sample=False)
    torch.testing.assert_close(lat[5][0], vae.encode(ds.images[5:6])[0], rtol=1e-4, atol=1e-5)
    assert lat[5][1] == int(ds.labels[5])
    third = encode_dataset(vae, DigitsDataset("train"), tmp_path, progress=False)  # other data: another entry
    assert third.path != first.path and third.encoded == len(DigitsDataset("train"))


def _in_process(main, argv, capsys):
    "Run console script `main` in this process; returns (exit code, stderr)."
    with pytest.raises(SystemExit) as e: main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err


def test_latent_train_and_sample_end_to_end(tmp_path, monkeypatch, capsys):
    from hw5_diffusion.cli import train_main, sample_main
    env = {"HW5_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    p = run(["hw5-train", "--latent", "--vae", "train", "--vae-steps", "20", "--data", "digits", "--out", out, "--max-steps", "20",
             "--batch-size", "32", "--sample-n", "4", "--sample-steps", "10", "--set", "unet.ch=8"], env=env)
    assert "encoded 1437 images" in p.stderr
    cfg = json.loads((out / "config.json").read_text())
    vcfg = json.loads((out / "vae" / "config.json").read_text())
    assert cfg["vae"]["source"] == "train" and cfg["vae"]["latent_shape"] == [1, 8, 8] and cfg["unet"]["sample_size"] == 8
    assert cfg["vae"]["scale"] == vcfg["scaling_factor"] and vcfg["scaling_factor_estimated"] is True
    assert cfg["scheduler"]["clip_sample"] is False
    for sampler in ("ddpm", "ddim"):
        s = run(["hw5-sample", "--ckpt", out, "--n", "3", "--sampler", sampler, "--steps", "10", "--out", tmp_path / sampler], env=env)
        assert "wrote 3 images" in s.stdout and "in the latent space of" in s.stderr
        assert all(np.asarray(Image.open(f)).shape == (16, 16) for f in sorted((tmp_path / sampler).glob("0*.png")))
    # a second run on the same data and VAE (here a copy of it, elsewhere) reuses the cached latents
    monkeypatch.setenv("HW5_CACHE", env["HW5_CACHE"])
    shutil.copytree(out / "vae", tmp_path / "vae-copy")
    code, err = _in_process(train_main, ["--vae", tmp_path / "vae-copy", "--out", tmp_path / "run2", "--max-steps", "2",
                                         "--batch-size", "32", "--sample-n", "0", "--set", "unet.ch=8"], capsys)
    assert code == 0 and "training: 1437 latents 1×8×8" in err and "encoded" not in err
    # the VAE gone, or a VAE that does not exist: one clear error line, exit code 2, nothing written
    shutil.move(out / "vae", tmp_path / "vae-away")
    code, err = _in_process(sample_main, ["--ckpt", out, "--n", "2", "--out", tmp_path / "x"], capsys)
    assert code == 2 and err.count("\n") == 1 and "whose VAE is missing" in err and not (tmp_path / "x").exists()
    code, err = _in_process(train_main, ["--vae", tmp_path / "none.ckpt", "--out", tmp_path / "o"], capsys)
    assert code == 2 and err.count("\n") == 1 and f"VAE not found: {tmp_path / 'none.ckpt'}" in err and not (tmp_path / "o").exists()
