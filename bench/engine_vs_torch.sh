#!/bin/sh
# Times the Go engine against PyTorch (Debian's python3-torch and
# python3-torchvision, the same thread count) on torchvision models with
# random weights (fixed seed) exported by torch.onnx: forward, gradient and
# Hessian-vector product per batch and the peak resident memory of each
# process, at 224×224 with batch 4 and at 32×32 with batch 32, and prints
# the ratios (bitplan / PyTorch; the issue's targets: HVP time ≤ 1.0,
# peak memory ≤ 1.5), and the ratio of the HVP's process CPU time (cpu_x,
# all threads), which a loaded machine distorts less than wall time.
#
# Usage: sh bench/engine_vs_torch.sh [MODELS...]   (run from the repository root)
# Default models: resnet18 resnet50 mobilenet_v2. Model bert is a
# BERT-base-shaped encoder (scripts/zoo.py's, 12 layers, hidden 768, token
# ids and an attention mask in) timed at BERT_CONFIGS (default "128:8":
# sequence 128, batch 8). Models lstm and gru are scripts/zoo.py's large
# recurrent classifiers (2 layers, hidden 256, 40 features per step) timed
# at RNN_CONFIGS (default "50:2 50:32": 50 steps, batch 2 and 32; the
# engine's exact H·v through its LSTM/GRU kernel against double backprop
# through torch.nn.LSTM/GRU). THREADS (default 2) sets
# the threads of both; REPS (default 3) the timed repetitions; CONFIGS
# (default "224:4 32:32") the resolutions and batch sizes; TAGS (default
# openblas: op.Gemm on the system OpenBLAS, Debian's libopenblas-dev; empty
# for gonum's native BLAS) the Go build tags; PRECISION (default float32,
# as PyTorch runs) the engine's arithmetic.
set -eu
models=${*:-"resnet18 resnet50 mobilenet_v2"}
threads=${THREADS:-2}
reps=${REPS:-3}
configs=${CONFIGS:-"224:4 32:32"}
py=${PYTHON:-/usr/bin/python3} # Debian's python3-torch and python3-torchvision
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -tags "${TAGS-openblas}" -o "$dir/engine" ./bench/engine
field() { "$py" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
ratio() { "$py" -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
printf '%-13s %7s %6s | %9s %9s %9s %9s | %9s %9s %9s %9s | %6s %6s %6s\n' model res batch \
	go_fwd_s go_grad_s go_hvp_s go_MB pt_fwd_s pt_grad_s pt_hvp_s pt_MB hvp_x mem_x cpu_x
for m in $models; do
	cs=$configs
	[ "$m" = bert ] && cs=${BERT_CONFIGS:-"128:8"}
	case $m in lstm | gru) cs=${RNN_CONFIGS:-"50:2 50:32"} ;; esac
	for c in $cs; do
		res=${c%%:*}
		batch=${c##*:}
		onnx="$dir/$m-$res.onnx"
		"$py" bench/engine_torch.py export "$m" --res "$res" --out "$onnx" >/dev/null 2>&1
		pt=$("$py" bench/engine_torch.py time "$m" --res "$res" --batch "$batch" --reps "$reps" --threads "$threads")
		if ! go=$(GOMAXPROCS=$threads "$dir/engine" -batch "$batch" -reps "$reps" -workers "$threads" -precision "${PRECISION:-float32}" "$onnx" 2>"$dir/err"); then
			printf '%-13s %7s %6s | bitplan failed: %s\n' "$m" "$res" "$batch" "$(tail -1 "$dir/err")"
			continue
		fi
		printf '%-13s %7s %6s | %9.3f %9.3f %9.3f %9.0f | %9.3f %9.3f %9.3f %9.0f | %6s %6s %6s\n' "$m" "$res" "$batch" \
			"$(field "$go" forward_s)" "$(field "$go" gradient_s)" "$(field "$go" hvp_s)" "$(field "$go" peak_rss_mb)" \
			"$(field "$pt" forward_s)" "$(field "$pt" gradient_s)" "$(field "$pt" hvp_s)" "$(field "$pt" peak_rss_mb)" \
			"$(ratio "$(field "$go" hvp_s)" "$(field "$pt" hvp_s)")" "$(ratio "$(field "$go" peak_rss_mb)" "$(field "$pt" peak_rss_mb)")" \
			"$(ratio "$(field "$go" hvp_cpu_s)" "$(field "$pt" hvp_cpu_s)")"
	done
done
