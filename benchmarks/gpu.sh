#!/usr/bin/env bash
# The GPU checks, in one pass (each check has a time limit: 900 s in all): every benchmark with --device cuda, appended to
# benchmarks/RESULTS.md (training images/s and MFU of the HW5 configs in bf16, 5,000 DDIM-50 samples + FID/IS: mfu.py), and the training engine on CUDA — fp16 (the grad scaler) and bf16 on the digits, and the
# seed's imagenet100-pixel preset at 128² on a stand-in image folder, and every chapter under `nbdev_test --flags cuda`.
# Logs go to $LOGS (default gpu_logs/).
#
#     bash benchmarks/gpu.sh                    # from the repository root, with the package importable
#     SKIP="latent train-bf16" bash benchmarks/gpu.sh   # leave checks out by name
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGS=${LOGS:-$ROOT/gpu_logs}
mkdir -p "$LOGS"
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: these checks need a GPU'" || exit 2
status=0
check() {  # check NAME SECONDS COMMAND...: run with a time limit, log it, remember a failure and go on
    local name=$1 limit=$2; shift 2
    case " ${SKIP:-} " in *" $name "*) echo "== $name: skipped (SKIP)" | tee -a "$LOGS/summary.txt"; return;; esac
    echo "== $name" | tee -a "$LOGS/summary.txt"
    local t0=$SECONDS
    (cd "$ROOT/benchmarks" && timeout "$limit" "$@") > "$LOGS/$name.log" 2>&1
    local rc=$?
    echo "   rc=$rc, $((SECONDS - t0)) s" | tee -a "$LOGS/summary.txt"
    [ $rc = 0 ] || { status=1; tail -5 "$LOGS/$name.log" | tee -a "$LOGS/summary.txt"; }
}
TRAIN=(python3 -c "import sys; from hw5_diffusion.cli import train_main; train_main(sys.argv[1:])")

check unet 60 python3 unet.py --device cuda --rounds 5 --iters 5
check unet-bf16 45 python3 unet.py --device cuda --config imagenet100 --amp bf16 --rounds 5 --iters 5
check sampling 60 python3 sampling.py --device cuda --repeats 2
check eval 60 python3 eval.py --device cuda --sizes 1000 5000
check latent 45 python3 latent.py --device cuda --rounds 5 --iters 3 --bf16
check attention 60 python3 attention.py --device cuda --amp bf16
check mfu 120 python3 mfu.py --device cuda --batch 32 --iters 10 --n 5000
# every chapter under test with its `cuda` cells, on the GPU (the trainer and samplers pick CUDA by themselves)
check notebooks 240 bash -c "cd '$ROOT/nbs' && OMP_NUM_THREADS=2 nbdev_test --flags cuda --n_workers 4 --timing"
RUN=$(mktemp -d)
check train-fp16 75 "${TRAIN[@]}" --data digits --out "$RUN/fp16" --device cuda --set mixed_precision=fp16 --sample-n 16
check train-bf16 75 "${TRAIN[@]}" --data digits --out "$RUN/bf16" --device cuda --set mixed_precision=bf16 --sample-n 16
# stand-in for ImageNet-100: random 128² JPEGs in the ROOT/train/<class>/ layout the data chapter reads
python3 - "$RUN/in100" <<'EOF'
import sys; from pathlib import Path; import numpy as np; from PIL import Image
rng = np.random.default_rng(0)
for c in range(4):
    d = Path(sys.argv[1]) / "train" / f"n{c:08d}"; d.mkdir(parents=True)
    for i in range(64): Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(d / f"{i}.JPEG")
EOF
check train-imagenet100 60 "${TRAIN[@]}" --preset imagenet100-pixel --data "$RUN/in100" --out "$RUN/in100-run" --device cuda \
      --max-steps 200 --set mixed_precision=bf16 --set num_workers=4 --set checkpoint_every=0 --set preview_every=0 --sample-n 4 --sample-steps 50
for r in fp16 bf16 in100-run; do cp "$RUN/$r/metrics.jsonl" "$LOGS/metrics-$r.jsonl" 2>/dev/null; done
cp "$RUN/fp16/samples.png" "$LOGS/samples-fp16.png" 2>/dev/null
exit $status
