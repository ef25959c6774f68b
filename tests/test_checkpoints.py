"""Loading weights never runs code and names the file it cannot read (the checkpoints chapter shows one payload refused)."""
import json, os
import pytest, torch
from hw5_diffusion.checkpoints import CheckpointError, load_tensors


class Payload:
    "Pickled, it would write `path` when loaded."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (exec, (f"open({self.path!r}, 'w').write('x')",))


def test_tensor_files_load(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pt")
    assert torch.equal(load_tensors(tmp_path / "w.pt")["w"], torch.ones(2))
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "lightning.ckpt")  # the course's (Lightning's) layout
    assert torch.equal(load_tensors(tmp_path / "lightning.ckpt", key="state_dict")["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match=r"has no 'state_dict' entry \(keys: \['w'\]\)"):
        load_tensors(tmp_path / "w.pt", key="state_dict")
    hdr = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode().ljust(0x80)
    (tmp_path / "w.safetensors").write_bytes(len(hdr).to_bytes(8, "little") + hdr + torch.ones(2).numpy().tobytes())
    assert torch.equal(load_tensors(tmp_path / "w.safetensors")["w"], torch.ones(2))  # a header length starting with 0x80 is no pickle


@pytest.mark.parametrize("name,content,msg", [("junk.ckpt", b"not a checkpoint" * 4, "not a torch.save file"),
                                              ("missing.pt", None, "checkpoint weights not found")])
def test_junk_and_missing_files_are_one_error(tmp_path, name, content, msg):
    if content is not None: (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=msg): load_tensors(tmp_path / name)


def test_cut_file_is_corrupt(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "w.pt").read_bytes()[:100])  # a download that broke off
    with pytest.raises(CheckpointError, match="corrupt checkpoint weights"): load_tensors(tmp_path / "cut.pt")


def test_pickle_payloads_are_refused_and_never_run(tmp_path):
    torch.save({"w": Payload(tmp_path / "pwned")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refusing to load"): load_tensors(tmp_path / "evil.pt")
    os.replace(tmp_path / "evil.pt", tmp_path / "evil.safetensors")              # a pickle dressed as safetensors
    with pytest.raises(CheckpointError, match="refusing to unpickle"): load_tensors(tmp_path / "evil.safetensors")
    assert not (tmp_path / "pwned").exists()
