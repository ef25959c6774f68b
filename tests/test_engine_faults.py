"""What the training engine does when a batch is bad, in-process (the chapter keeps to the story; the killed,
interrupted and full-disk runs with real processes are in test_trainer.py)."""
import pytest, torch
from hw5_diffusion.data import DataError, DigitsDataset
from hw5_diffusion.ddpm import step_batch
from hw5_diffusion.training import Trainer, TrainingError, apply_overrides, preset, checkpoints

TINY = ["unet.ch=8", "batch_size=16", "max_steps=12", "checkpoint_every=4", "log_every=2", "preview_every=0",
        "sample_n=0", "eval_n=32", "tensorboard=false"]


class NaNAt(torch.utils.data.Dataset):
    "The digits, with image `index` full of NaN."
    def __init__(self, ds, index): self.ds, self.index, self.classes = ds, index, ds.classes
    def __len__(self): return len(self.ds)
    def __getitem__(self, i):
        x, y = self.ds[i]
        return (torch.full_like(x, float("nan")) if i == self.index else x), y


def test_nan_in_a_batch_stops_before_the_optimizer_step_and_keeps_the_last_checkpoint(tmp_path):
    cfg, digits = apply_overrides(preset("digits"), TINY), DigitsDataset()
    bad = Trainer(cfg, tmp_path / "run", dataset=NaNAt(digits, int(step_batch(cfg.seed, 6, len(digits), 16)[3])), progress=False)
    with pytest.raises(TrainingError, match=f"loss is nan at step 7: training stopped before updating the weights; "
                                            f"last good checkpoint: {tmp_path / 'run'}/checkpoints/step_000004"):
        bad.fit()
    assert bad.step == 6 and [p.name for p in checkpoints(tmp_path / "run")] == ["step_000004"]
    assert all(p.isfinite().all() for p in bad.unwrapped.parameters())


class Unreadable(torch.utils.data.Dataset):
    "A data set whose first image cannot be read inside a loader worker."
    classes = ["x"]
    def __len__(self): return 64
    def __getitem__(self, i):
        if i == 0 and torch.utils.data.get_worker_info() is not None: raise DataError("cannot read image /data/train/x/broken.png: truncated")
        return torch.zeros(1, 16, 16), 0


def test_unreadable_image_in_a_worker_is_one_line():
    "A DataError raised in a loader worker arrives wrapped in the worker's traceback; the engine passes on the one line."
    cfg = apply_overrides(preset("digits"), [*TINY, "num_workers=1", "batch_size=64"])
    with pytest.raises(DataError) as e: Trainer(cfg, dataset=Unreadable(), progress=False).fit()
    assert str(e.value) == "cannot read image /data/train/x/broken.png: truncated"
