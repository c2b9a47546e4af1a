# Assembles the tokenizer.json that Qwen2/Qwen2.5 publish, from the slow layout (vocab.json +
# merges.txt + tokenizer_config.json's added_tokens_decoder), using Qwen2's published normalizer,
# pre-tokenizer and decoder settings (as in Qwen/Qwen2.5-*/tokenizer.json on the Hub).
# Usage: make_qwen_tokenizer_json.py MODEL_DIR OUT_JSON
import json
import sys

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

model_dir, out_path = sys.argv[1], sys.argv[2]
with open(f"{model_dir}/vocab.json", encoding="utf-8") as f:
    vocab = json.load(f)
with open(f"{model_dir}/merges.txt", encoding="utf-8") as f:
    merges = [line.rstrip("\n") for line in f if line.rstrip("\n") and not line.startswith("#version")]
with open(f"{model_dir}/tokenizer_config.json", encoding="utf-8") as f:
    config = json.load(f)
added = [dict(id=int(i), **{k: t[k] for k in ("content", "single_word", "lstrip", "rstrip",
                                               "normalized", "special")})
         for i, t in sorted(config["added_tokens_decoder"].items(), key=lambda kv: int(kv[0]))]
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
              "use_regex": False}
tokenizer = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": added,
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated",
         "invert": False},
        byte_level]},
    "post_processor": byte_level,
    "decoder": byte_level,
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
              "ignore_merges": False, "vocab": vocab, "merges": merges},
}
with open(out_path, "w", encoding="utf-8") as f:
    json.dump(tokenizer, f, ensure_ascii=False)
