#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora from the real files in ../shared (and, for the .qlm,
logits and importance targets, from what the release tools make of stories260K).

Usage: make_seeds.py OUT_DIR [RELEASE_BUILD_DIR]   (OUT_DIR/<target>/ per target)
"""
import glob
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SEP = b"\n=====QLM-FUZZ-NEXT-FILE=====\n"
SEP_FF = b"\xff"  # fuzz_infill's field separator


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def small_safetensors():
    """Three tensors, one of each source dtype, plus metadata: a header every branch reads."""
    tensors = [("a", "F32", [2, 3], struct.pack("<6f", *range(6))),
               ("b", "F16", [4], struct.pack("<4H", 0x3C00, 0x4000, 0xBC00, 0)),
               ("c", "BF16", [2, 2], struct.pack("<4H", 0x3F80, 0x4000, 0xBF80, 0))]
    header, payload = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(payload), len(payload) + len(data)]}
        payload += data
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + payload


def main():
    out = sys.argv[1]
    release = sys.argv[2] if len(sys.argv) > 2 else None
    stories = os.path.join(SHARED, "models", "stories260K")

    for p in glob.glob(os.path.join(SHARED, "shapes", "*.json")) + [
            os.path.join(stories, "config.json"),
            os.path.join(SHARED, "tokenizers", "qwen2.5-0.5b", "config.json")]:
        put(out, "fuzz_config_json", os.path.basename(os.path.dirname(p)) + "-" +
            os.path.basename(p), read(p))

    put(out, "fuzz_safetensors", "small.safetensors", small_safetensors())
    put(out, "fuzz_safetensors", "stories260K.safetensors",
        read(os.path.join(stories, "model.safetensors")))

    tok = "fuzz_tokenizer_files"
    put(out, tok, "spm-stories", b"\x02" + read(os.path.join(stories, "tokenizer.model")) + SEP +
        read(os.path.join(stories, "tokenizer_config.json")))
    qwen = os.path.join(SHARED, "tokenizers", "qwen2.5-0.5b")
    vocab = json.loads(read(os.path.join(qwen, "vocab.json")))
    small_vocab = {k: v for k, v in vocab.items() if v < 400}
    merges = read(os.path.join(qwen, "merges.txt")).decode().splitlines()[:120]
    merges = [m for m in merges if m.startswith("#") or all(
        x in small_vocab for x in m.split(" "))]
    put(out, tok, "bpe-qwen-small", b"\x01" + json.dumps(small_vocab).encode() + SEP +
        "\n".join(merges).encode())
    added = read(os.path.join(qwen, "added_tokens.json"))
    for p in sorted(glob.glob(os.path.join(SHARED, "chat-templates", "*", "tokenizer_config.json"))):
        name = os.path.basename(os.path.dirname(p))
        put(out, tok, "config-" + name, b"\x03" + read(p) + SEP + added)
    smol = json.loads(read(os.path.join(SHARED, "tokenizers", "smollm2-135m", "tokenizer.json")))
    smol["model"]["vocab"] = {k: v for k, v in smol["model"]["vocab"].items() if v < 300}
    smol["model"]["merges"] = [m for m in smol["model"]["merges"][:200] if all(
        x in smol["model"]["vocab"] for x in (m.split(" ") if isinstance(m, str) else m))]
    smol["added_tokens"] = [a for a in smol["added_tokens"] if a["id"] < 300]
    put(out, tok, "json-smollm2-small", b"\x00" + json.dumps(smol).encode())

    # Every real chat template (chat_template.jinja, or tokenizer_config.json's string), with the
    # corpus's first conversation.
    convs = json.loads(read(os.path.join(SHARED, "chat-templates", "conversations.json")))
    first = convs[0]["messages"] if isinstance(convs, list) else next(iter(convs.values()))
    if isinstance(first, dict) and "messages" in first:
        first = first["messages"]
    for d in sorted(glob.glob(os.path.join(SHARED, "chat-templates", "*", ""))):
        name = os.path.basename(os.path.dirname(d))
        jinja = os.path.join(d, "chat_template.jinja")
        source = None
        if os.path.exists(jinja):
            source = read(jinja)
        elif os.path.exists(os.path.join(d, "tokenizer_config.json")):
            t = json.loads(read(os.path.join(d, "tokenizer_config.json"))).get("chat_template")
            if isinstance(t, str):
                source = t.encode()
        if source:
            put(out, "fuzz_chat_template", name, source + SEP + json.dumps(first).encode())

    with open(os.path.join(ROOT, "tests", "tokenizer", "corpus", "corpus.jsonl")) as f:
        for i, line in enumerate(f):
            if line.strip() and i % 3 == 0:
                put(out, "fuzz_encode", "line%03d" % i, json.loads(line).encode("utf-8"))

    # fuzz_infill: budget bytes, then prefix, suffix, typed, filename, repo, (chunk name, text)*
    # separated by 0xFF, cut from the repository's own sources at a few cursors.
    sources = ["src/generate.cpp", "include/qlm/infill.hpp", "scripts/fuzz.sh"]
    for i, rel in enumerate(sources):
        text = read(os.path.join(ROOT, rel))[:3000]
        for j, (budget, cursor) in enumerate([(255, len(text) // 2), (20, len(text) // 3)]):
            fields = [text[:cursor], text[cursor:], b"x", rel.encode(), b"qlm",
                      b"other.cpp", b"int other();\n"]
            put(out, "fuzz_infill", "src%d-%d" % (i, j),
                bytes([budget, 16 * j, j]) + SEP_FF.join(fields))

    # fuzz_sequence_file: stories260K's geometry (5 layers, 4 KV heads, head_dim 8), f32 and
    # f16, with a zero model id and checksum (the target fills in the right ones); version 2: one
    # global layer group, no sliding ones, no window.
    for kv, elem in ((0, 4), (1, 2)):
        for n in (1, 40, 64):
            header = bytes([0x51, 0x4C, 0x4D, 0x53, 0x45, 0x51, 0, 1]) + struct.pack(
                "<7I", 2, kv, 5, 4, 8, 32, n) + struct.pack("<Q", 0) + struct.pack("<3I", 1, 0, 0)
            tokens = struct.pack("<%di" % n, *[(7 * i + 1) % 512 for i in range(n)])
            payload = bytes((i * 37) % 251 for i in range(n * 5 * 4 * 8 * 2 * elem))
            if kv == 0:  # finite floats for an f32 cache
                payload = struct.pack("<%df" % (n * 5 * 4 * 8 * 2),
                                      *[((i % 17) - 8) / 8.0 for i in range(n * 5 * 4 * 8 * 2)])
            put(out, "fuzz_sequence_file", "kv%d-n%d" % (kv, n),
                header + tokens + payload + struct.pack("<Q", 0))

    # fuzz_server_request: first byte = endpoint (0 chat, 1 completions, 2 infill, 3 tokenize,
    # 4 detokenize), then a request body as clients send them.
    bodies = [
        (0, {"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
             "max_tokens": 4, "temperature": 0, "stream": True, "n": 2,
             "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 3}),
        (0, {"messages": [{"role": "user", "content": "Tell a story"}], "stop": ["\n", "The"],
             "seed": 3, "top_p": 0.5, "logit_bias": {"13": -100}, "presence_penalty": 1.5}),
        (1, {"prompt": "Once upon a time", "max_tokens": 6, "logprobs": 2, "n": 3}),
        (1, {"prompt": [1, 400, 401, 7], "stream": True, "stop": "a", "top_k": 5, "min_p": 0.1}),
        (2, {"input_prefix": "def f(", "input_suffix": ")\n", "prompt": "x",
             "input_extra": [{"filename": "a.py", "text": "x = 1\n"}], "n_predict": 3,
             "response_fields": ["content", "timings/prompt_n"], "stream": True}),
        (3, {"content": "Hello world <s>", "add_special": True, "with_pieces": True}),
        (4, {"tokens": [1, 2, 300, 511]}),
    ]
    for i, (endpoint, body) in enumerate(bodies):
        put(out, "fuzz_server_request", "body%d" % i,
            bytes([endpoint]) + json.dumps(body).encode())

    if release:
        tools = os.path.join(release, "tools")
        tmp = os.path.join(out, ".work")
        os.makedirs(tmp, exist_ok=True)
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            f.write("Once upon a time, there was a little girl named Lily. She loved to play. " * 8)
        for t in ("q8", "q4", "f16"):
            path = os.path.join(out, "fuzz_qlm_file", "stories260K-%s.qlm" % t)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            subprocess.run([os.path.join(tools, "qlm-convert"), stories, "-o", path, "--type", t],
                           check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        q8 = os.path.join(out, "fuzz_qlm_file", "stories260K-q8.qlm")
        os.makedirs(os.path.join(out, "fuzz_logits_file"), exist_ok=True)
        subprocess.run([os.path.join(tools, "qlm-perplexity"), "-m", q8, "-f", text, "-c", "16",
                        "--chunks", "3", "--save-logits",
                        os.path.join(out, "fuzz_logits_file", "stories260K.logits"),
                        "--save-importance", os.path.join(out, "fuzz_qlm_file", "stories.qlmi")],
                       check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
