"""Submissions that try to score without a solution (issue 27's table, and more): each cheat is the text of one solution
region, and gains 0 points. The file-system and network cheats work without `--sandbox` (the grader's threat model
says so) and gain 0 under it, changing nothing outside the part's own folder."""
import json, socket, uuid
from pathlib import Path
import pytest
from conftest import ROOT
from grading_mutants import Mutant
from test_grading import FULL, grade, scores, submission

GUIDE = "return torch.lerp(uncond, cond, scale)"
Q_SAMPLE = "return extract(self.sqrt_alpha_bar, t, x0.shape) * x0 + extract(self.sqrt_one_minus_alpha_bar, t, x0.shape) * noise"
POSTERIOR = ("mean = extract(self.posterior_mean_coef1, t, xt.shape) * x0 + extract(self.posterior_mean_coef2, t, xt.shape) * xt\n"
             "        return mean, extract(self.beta_tilde, t, xt.shape), extract(self.posterior_log_variance_clipped, t, xt.shape)")
LOSS = "    target = prediction_target(schedule, x0, t, noise, prediction_type)\n    return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, y), target)"
DROP = "    g = torch.Generator(device).manual_seed(stream_seed(seed, 2**43, step))\n    return torch.rand(global_batch, generator=g, device=device) < p"
EMB = "    emb = torch.cat([torch.cos(args), torch.sin(args)], -1)\n    return F.pad(emb, (0, 1)) if dim % 2 else emb"
LOGVAR = "    if variance_type == \"learned\": return v\n    frac = (v + 1) / 2                                                          # v ∈ [-1, 1] -> [0, 1]\n    return frac * max_log + (1 - frac) * min_log"
COSINE = "    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)               # β_T would be 1: clipped, as in Improved DDPM"
DDIM_X0 = "        ### BEGIN SOLUTION\n        x0 = self._pred_x0(model_output, sample, c)\n        ### END SOLUTION\n        # 3."
SAMPLE = "        return self.mean + self.std * eps"


def indent(code: str, n: int) -> str: return "\n".join(" " * n + l if l else l for l in code.strip("\n").split("\n"))


CALL_STACK = Mutant("the instructor's guide found through the grader's call stack (ROOT)", "09_cfg", GUIDE, indent("""
import sys
f = sys._getframe()
while f is not None:
    root = f.f_globals.get("ROOT")
    if root is not None:
        ns = {}
        exec(open(f"{root}/hw5_diffusion/cfg.py").read().replace("from .", "from hw5_diffusion."), ns)
        return ns["guide"](cond, uncond, scale)
    f = f.f_back
raise RuntimeError("no grader on the stack")""", 4).lstrip(), "cfg.guidance")

FINDER = Mutant("the instructor's q_sample through the editable install's finder", "01_forward", Q_SAMPLE, indent("""
import sys, os, importlib, importlib.util
finders = [f for f in sys.meta_path if "editable" in type(f).__module__]
for d in sys.path:
    for n in (os.listdir(d) if os.path.isdir(d) else []):
        if n.startswith("__editable__") and n.endswith("finder.py"):
            try: finders.append(importlib.import_module(n[:-3])._EditableFinder)
            except ImportError: pass
for f in finders:
    spec = f.find_spec("hw5_diffusion.forward", None)
    if spec and spec.origin != __file__:
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        return mod.NoiseSchedule.q_sample(self, x0, t, noise)
raise RuntimeError("no finder")""", 8).lstrip(), "ddpm.q_sample")

GC = Mutant("the instructor's q_posterior found with gc", "01_forward", POSTERIOR, indent("""
import gc
for o in gc.get_objects():
    code = getattr(o, "__code__", None)
    if code and getattr(o, "__name__", "") in ("q_posterior", "_ref_q_posterior") and code.co_filename != __file__:
        return o(self, x0, xt, t)
raise RuntimeError("no reference in memory")""", 8).lstrip(), "ddpm.q_posterior")

FAKE_EXIT = Mutant("'all passed' down every pipe and a fake status, then os._exit(0)", "03_ddpm", LOSS, indent("""
import gc, os, json
for o in gc.get_objects():
    if type(o).__name__ == "Connection":
        try: o.send([])
        except Exception: pass
os.makedirs("out", exist_ok=True)
json.dump({}, open("out/status.json", "w"))
os._exit(0)""", 4), "ddpm.loss")

REPLACE_TESTS = Mutant("the hidden tests and probes replaced by no-ops", "06_training", DROP, indent("""
import sys
for m in list(sys.modules.values()):
    for name in ("_TESTS", "TESTS", "PROBES"):
        d = getattr(m, name, None)
        if isinstance(d, dict):
            for k in d: d[k] = []
main = sys.modules["__main__"]
for k, v in list(vars(main).items()):
    if k.startswith("p_") and callable(v): setattr(main, k, lambda I, a: {})
return torch.zeros(global_batch, dtype=torch.bool)""", 4), "cfg.label_dropout")

NO_COMPARE = Mutant("comparisons replaced by no-ops, junk answers", "02_unet", EMB, indent("""
import sys, torch.testing
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
for m in list(sys.modules.values()):
    if hasattr(m, "_close"): m._close = lambda *a, **k: None
return torch.zeros(len(t), dim)""", 4), "ddpm.timestep_embedding")

SUBCLASS = Mutant("a Tensor subclass whose .item() is 0 and that equals everything", "03_ddpm", LOGVAR, indent("""
class Liar(torch.Tensor):
    def item(self): return 0.0
    def __eq__(self, other): return True
    def allclose(self, *a, **k): return True
    def __sub__(self, other): return torch.zeros(self.shape).as_subclass(Liar)
return torch.zeros_like(torch.as_tensor(v)).as_subclass(Liar)""", 4), "advanced.learned_variance")

LEAK = Mutant("the runner's source in an exception message", "01_forward", COSINE, indent("""
import sys
raise AssertionError("LEAKMARK " + open(sys.argv[0]).read()[:3000])""", 4), "advanced.cosine_schedule")

LEAK_CLASS = Mutant("text smuggled out in an exception class's name", "04_ddim", DDIM_X0,
                    "        ### BEGIN SOLUTION\n        raise type('LEAKMARK_def_step_x0_clamp', (Exception,), {})()\n        ### END SOLUTION\n        # 3.", "ddim.step")


def daemon(piddir: Path, out: Path) -> Mutant:
    "A correct sample() that also leaves a process behind (double fork, setsid) to rewrite grades.json / feedback.md later."
    code = ("import os, time\\nif os.fork(): os._exit(0)\\nos.setsid()\\nopen(os.path.join(%r, str(os.getpid())), 'w').close()\\n"
            "time.sleep(3)\\nfor n in ('grades.json', 'feedback.md'): open(os.path.join(%r, n), 'w').write('{\\\"total\\\": 100}')") % (str(piddir), str(out))
    return Mutant("a detached process that rewrites grades.json after the grader", "08_latent", SAMPLE, indent(f"""
import subprocess, sys, os, time
n = len(os.listdir({str(piddir)!r}))
subprocess.Popen([sys.executable, "-c", "{code}"], start_new_session=True)
while len(os.listdir({str(piddir)!r})) == n: time.sleep(0.01)
return self.mean + self.std * eps""", 8), "vae.reparameterization")


def test_cheats_gain_nothing(tmp_path):
    "Each row of issue 27's table in one submission, each in its own part: 0 points each; the detached process is dead when the grader exits."
    piddir, out = tmp_path / "pids", tmp_path / "out"
    piddir.mkdir()
    cheats = [CALL_STACK, FINDER, GC, FAKE_EXIT, REPLACE_TESTS, NO_COMPARE, SUBCLASS, LEAK, LEAK_CLASS, daemon(piddir, out)]
    sub = submission(tmp_path / "sub", *cheats)
    g = grade(sub, "--out", out, "--parts", *[m.part for m in cheats])
    assert scores(g) == {**{m.part: 0 for m in cheats}, "vae.reparameterization": FULL["vae.reparameterization"]}, scores(g)
    pids = [int(p.name) for p in piddir.iterdir()]
    assert pids and not [p for p in pids if Path(f"/proc/{p}").exists()], "a process the submission started outlived the grader"
    assert json.loads((out / "grades.json").read_text()) == g
    fb = (out / "feedback.md").read_text()
    assert "LEAKMARK" not in fb and "LEAKMARK" not in (out / "grades.json").read_text() and "_runner_main" not in fb
    assert "raises AssertionError at line 4 of your code in `cosine_betas` (01_forward.ipynb)" in fb, fb
    assert "raises an exception at line 1 of your code in `DDIMScheduler.step`" in fb, fb


HANG = Mutant("an endless loop at import (module level, after the region)", "09_cfg", GUIDE, GUIDE + "\nwhile True: pass", "cfg.guidance")
THREAD = Mutant("a non-daemon thread started at import", "02_unet", EMB, EMB + "\nimport threading, time\nthreading.Thread(target=time.sleep, args=(3600,)).start()",
                "ddpm.timestep_embedding")


BIG = Mutant("16 GiB of address space (never touched: without the cap it would succeed)", "03_ddpm", LOSS,
            "    torch.empty(2 ** 34, dtype=torch.uint8)\n" + LOSS, "ddpm.loss")


def test_a_submission_that_hangs_at_import_is_stopped_at_the_timeout(tmp_path):
    "The endless loop costs its part (timed out), the thread nothing: the part's process ends when its answers are written; memory is capped per part."
    g = grade(submission(tmp_path, HANG, THREAD, BIG), "--parts", "cfg.guidance", "ddpm.timestep_embedding", "ddpm.loss", "--timeout", "20")
    assert scores(g) == {"cfg.guidance": 0, "ddpm.timestep_embedding": FULL["ddpm.timestep_embedding"], "ddpm.loss": 0}, scores(g)
    assert all(why == "timed out after 20 s" for _, why in g["parts"]["cfg.guidance"]["failed"])
    assert all(why.startswith("raises RuntimeError at line 1 of your code in `ddpm_loss`") for _, why in g["parts"]["ddpm.loss"]["failed"])


@pytest.fixture
def listener():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128); s.setblocking(False)
    yield s
    s.close()


def test_sandbox_stops_reading_writing_and_the_network(tmp_path, listener):
    "Without --sandbox these cheats score (the threat model); with it they gain 0, and nothing is written outside the part."
    pwned = ROOT / "tests" / f"pwned-{uuid.uuid4().hex}"
    out = tmp_path / "out"; out.mkdir(); (out / "secret.txt").write_text("x")
    port = listener.getsockname()[1]
    cheats = [
        Mutant("the course's notebook read from disk", "01_forward", Q_SAMPLE, indent(f"""
import json
src = "".join("".join(c["source"]) for c in json.load(open({str(ROOT / 'nbs' / '01_forward.ipynb')!r}))["cells"])
line = next(l for l in src.split("\\n") if "extract(self.sqrt_alpha_bar, t, x0.shape) * x0" in l and "return" in l)
return eval(line.strip()[len("return "):])""", 8).lstrip(), "ddpm.q_sample"),
        Mutant("a write into the instructor's checkout", "09_cfg", GUIDE, f"open({str(pwned)!r}, 'w').write('x')\n    " + GUIDE, "cfg.guidance"),
        Mutant("the answer fetched over the network", "06_training", DROP, indent(f"""
import socket
socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
g = torch.Generator(device).manual_seed(stream_seed(seed, 2**43, step))
return torch.rand(global_batch, generator=g, device=device) < p""", 4), "cfg.label_dropout"),
        Mutant("the output folder read", "02_unet", EMB, f"    open({str(out / 'secret.txt')!r}).read()\n" + EMB, "ddpm.timestep_embedding"),
    ]
    sub = submission(tmp_path / "sub", *cheats)
    parts = [m.part for m in cheats]
    try:
        assert scores(grade(sub, "--parts", *parts, "--out", tmp_path / "plain")) == {k: FULL[k] for k in parts}   # the cheats work without the sandbox
        assert pwned.exists(); pwned.unlink()
        listener.accept()[0].close()
        while True:                                              # the other connections of that run
            try: listener.accept()[0].close()
            except BlockingIOError: break
        g = grade(sub, "--parts", *parts, "--out", out, "--sandbox")
        assert scores(g) == {k: 0 for k in parts}, scores(g)
        assert not pwned.exists()
        with pytest.raises(BlockingIOError): listener.accept()
        assert sorted(p.name for p in out.iterdir()) == ["feedback.md", "grades.json", "secret.txt"]
    finally:
        if pwned.exists(): pwned.unlink()
