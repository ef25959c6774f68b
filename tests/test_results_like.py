"The results' comparisons compare like with like: rows a sentence compares share training budget and draws, or it says they do not."
import json
from conftest import ROOT

ROWS = json.loads((ROOT / "results" / "digits.json").read_text())["rows"]


def _prose():
    nb = json.loads((ROOT / "nbs" / "12_results.ipynb").read_text())
    return next("".join(c["source"]) for c in nb["cells"] if c.get("id") == "a933a7d3")


def test_latent_against_pixel_at_an_equal_budget_and_draws():
    "Table 3's like-with-like comparison: DDIM-50 at the same training step, the same draws, a difference larger than the spreads."
    pixel, latent = ROWS["convergence"], ROWS["latent"][1]["convergence"]          # pixel DDIM-50 at B/2, latent DDIM-50 at its end
    ddim50 = next(r for r in ROWS["ddim"] if r["steps"] == 50)
    assert (latent["end_step"], pixel["step"]) == (1200, 1200) and latent["seeds"] == pixel["seeds"] and len(pixel["seeds"]) == 3
    assert ROWS["latent"][1]["sampler"] == ddim50["sampler"] == "ddim" and ROWS["latent"][1]["steps"] == 50
    diff = latent["end_fid"] - pixel["fid"]
    assert diff > max(latent["end_fid_std"], pixel["fid_std"])                     # resolved: larger than either spread
    text = _prose()
    assert f"{latent['end_fid']:.1f} ± {latent['end_fid_std']:.1f}" in text and f"{pixel['fid']:.1f} ± {pixel['fid_std']:.1f}" in text
    assert f"a difference of {diff:.1f}" in text


def test_rows_of_unequal_budget_or_draws_are_said_to_be():
    "The table's own rows differ in budget (and the DDPM rows in steps): the sentence that compares them says so."
    latent_ddpm, pixel_ddpm = ROWS["latent"][2], ROWS["ddpm"]
    assert latent_ddpm["checkpoint_step"] != pixel_ddpm["checkpoint_step"] and latent_ddpm["steps"] != pixel_ddpm["steps"]
    text = " ".join(_prose().split())
    assert "do not compare like with like" in text and "1,200 steps and the pixel one 2,400" in text
    assert "**not resolved**" in text
