"""Image files that fool a quick check (issue 15, items 5 and 6): a JPEG cut off mid-file passes `Image.verify`, and
Pillow's own conversion clips 16- and 32-bit grey to white; every PIL mode must load with its real values in [-1, 1]."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from conftest import run
from hw5_diffusion.data import DataError, ImageFolderDataset


def _folder(root, n=4):
    "`root/train/{a,b}/k.jpg`: `n` good JPEGs per class, and in class b `cut.jpg`, whose scan data ends early."
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / "train" / c).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "train" / c / f"{k}.jpg")
    data, cut = (root / "train" / "b" / "0.jpg").read_bytes(), root / "train" / "b" / "cut.jpg"
    cut.write_bytes(data[:len(data) * 2 // 3])  # the headers stay whole
    with Image.open(cut) as im: im.verify()  # what the quick check at indexing passed
    return root


def test_cut_off_jpeg_is_skipped_counted_and_announced(tmp_path, capsys):
    ds = ImageFolderDataset(_folder(tmp_path), resolution=16, on_corrupt="skip")
    names = [p.name for p, _ in ds.samples]
    assert "cut.jpg" not in names and len(ds) == 8
    assert [p.name for p, _ in ds.skipped] == ["cut.jpg"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 1" in err[0] and "cut.jpg" in err[0]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_cut_off_jpeg_skipped_in_loader_workers(tmp_path, num_workers):
    ds = ImageFolderDataset(_folder(tmp_path), resolution=16, on_corrupt="skip")
    xs = [x for x, _ in DataLoader(ds, batch_size=3, num_workers=num_workers)]
    assert torch.cat(xs).shape == (8, 3, 16, 16)


def test_cut_off_jpeg_with_on_corrupt_error_is_one_data_error(tmp_path):
    ds = ImageFolderDataset(_folder(tmp_path), resolution=16)
    i = [p.name for p, _ in ds.samples].index("cut.jpg")
    with pytest.raises(DataError, match=r"cannot read image .*cut\.jpg"): ds[i]


def test_training_with_skip_and_workers_carries_on_past_a_cut_off_jpeg(tmp_path):
    # 2 epochs of 9 images in batches of 4: with seed 0 the cut-off file is drawn (the run died there before the fix)
    _folder(tmp_path / "data")
    p = run(["hw5-train", "--data", tmp_path / "data", "--resolution", "16", "--out", tmp_path / "o", "--max-steps", "4",
             "--batch-size", "4", "--sample-n", "0", "--set", "unet.ch=8", "--set", "on_corrupt=skip", "--set", "num_workers=2",
             "--set", "eval_n=0", "--set", "preview_every=0", "--set", "tensorboard=false"], check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "skipped 1" in p.stderr and "cut.jpg" in p.stderr


# ---- item 6: every PIL mode by its real bit depth --------------------------------------------------------------------

def _expected_rgb(mode, a):
    "The RGB intensities in [0, 1] of pixel array `a` of `mode`, computed by hand."
    if mode == "1": return np.repeat(a[..., None].astype(float), 3, -1)
    if mode == "L": return np.repeat(a[..., None] / 255, 3, -1)
    if mode == "I;16": return np.repeat(a[..., None] / 65535, 3, -1)
    if mode == "I": return np.repeat(a[..., None].clip(0) / (2**31 - 1), 3, -1)  # negative: black
    if mode in ("RGB", "RGBA"): return a[..., :3] / 255  # alpha is dropped
    if mode == "CMYK": return (255 - a[..., :3].astype(float)) * (255 - a[..., 3:].astype(float)) / 255**2
    raise ValueError(mode)


PALETTE = np.array([[0, 0, 0], [255, 0, 0], [10, 200, 30], [128, 128, 128]], dtype=np.uint8)


def _image(mode):
    "A 4×4 image of `mode` with values across its range, its file name, and its expected RGB in [0, 1]."
    rng = np.random.default_rng(1)
    if mode == "P":
        idx = rng.integers(0, 4, (4, 4), dtype=np.uint8)
        im = Image.fromarray(idx, "P"); im.putpalette(PALETTE.flatten().tolist())
        return im, "p.png", PALETTE[idx] / 255
    if mode == "1": a = rng.integers(0, 2, (4, 4)).astype(bool)
    elif mode == "I;16": a = np.array([0, 32768, 65535, 1000, 257, 40000, 65000, 12345] * 2, dtype=np.uint16).reshape(4, 4)
    elif mode == "I": a = np.array([0, 2**30, 2**31 - 1, -7, 65535, 2**29, 1, 2**31 - 2**24] * 2, dtype=np.int32).reshape(4, 4)
    else: a = rng.integers(0, 256, (4, 4, len(mode)), dtype=np.uint8).squeeze()
    # PNG holds 1, L, 16-bit grey, RGB and RGBA; 32-bit integers and CMYK need TIFF
    name = f"{mode.replace(';', '')}.{'tif' if mode in ('I', 'CMYK') else 'png'}"
    return Image.fromarray(a, "CMYK") if mode == "CMYK" else Image.fromarray(a), name, _expected_rgb(mode, a)


@pytest.mark.parametrize("mode", ["1", "L", "I;16", "I", "RGB", "RGBA", "P", "CMYK"])
def test_every_pil_mode_loads_by_its_bit_depth(tmp_path, mode):
    im, name, expected = _image(mode)
    assert im.mode == mode
    (tmp_path / "train" / "c").mkdir(parents=True)
    im.save(tmp_path / "train" / "c" / name)
    assert Image.open(tmp_path / "train" / "c" / name).mode == mode  # the file keeps the mode under test
    x, _ = ImageFolderDataset(tmp_path, resolution=4)[0]
    want = torch.tensor(expected, dtype=torch.float32).permute(2, 0, 1) * 2 - 1
    torch.testing.assert_close(x, want, atol=2.5 / 255, rtol=0)  # 8-bit rounding


def test_16_bit_reference_for_fid_is_not_white(tmp_path):
    from hw5_diffusion.evaluation import reference_dataset
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(tmp_path / "grey.png")
    ds, _ = reference_dataset(str(tmp_path), 8)
    torch.testing.assert_close(ds[0][0], torch.zeros(3, 8, 8), atol=2 / 255, rtol=0)
