#!/usr/bin/env bash
# GPU check: on a machine with CUDA, train the default experiment for a few steps in bf16, run one 2-GPU DDP
# step when two GPUs are present, and the benchmarks' training and inference sections on the GPU; prints the
# figures. Usage: bash scripts/gpu_check.sh [python]   (default: .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
export NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=offline
OUT="${OCHMR_GPU_CHECK_OUT:-outputs/gpu_check}"

GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$GPUS" -lt 1 ]; then
  echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is False); nothing to check" >&2
  exit 2
fi
"$PY" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPUs:', torch.cuda.device_count())"

SMALL=(experiment=synthcrowd_spin logger=csv trainer.max_epochs=1 trainer.limit_train_batches=20
       trainer.limit_val_batches=2 trainer.enable_progress_bar=false test_after_fit=false)

echo "== 1 GPU, bf16-mixed: 20 training steps of the SPIN baseline on SynthCrowd"
SECONDS=0
"$PY" -m ochmr_lit.fit "${SMALL[@]}" trainer=gpu "hydra.run.dir=$OUT/gpu1"
echo "gpu_check: 1-GPU run took ${SECONDS} s (including start-up and data loading)"

if [ "$GPUS" -ge 2 ]; then
  echo "== 2 GPUs, DDP (NCCL), bf16-mixed: 20 steps"
  SECONDS=0
  "$PY" -m ochmr_lit.fit "${SMALL[@]}" trainer=ddp trainer.devices=2 "hydra.run.dir=$OUT/ddp2"
  echo "gpu_check: 2-GPU DDP run took ${SECONDS} s"
else
  echo "== one GPU only: the 2-GPU DDP step is skipped"
fi

echo "== benchmarks on the GPU (training and inference sections, quick sizes)"
"$PY" -m ochmr_lit.bench --device cuda --only training,inference --quick --json "$OUT/bench_cuda.json"
echo "gpu_check: done; figures above, bench rows in $OUT/bench_cuda.json"
