// Reference encoder: Hugging Face's own tokenizer implementation (@huggingface/tokenizers, pure JS).
// Usage: node hf_encode.mjs TOKENIZER_JSON TOKENIZER_CONFIG_JSON|- CORPUS_JSONL
// Prints one JSON object: {"ids": [[...], ...], "plain": [[...], ...], "decoded": [...],
// "decoded_skip": [...]} — ids with special tokens added (as HF encode does by default), ids
// without, decode(ids) and decode(ids, skip_special_tokens), without clean-up of spaces.
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const [tokPath, configPath, corpusPath] = process.argv.slice(2);
const tokenizerJson = JSON.parse(readFileSync(tokPath, "utf8"));
const config = configPath === "-" ? {} : JSON.parse(readFileSync(configPath, "utf8"));
const tokenizer = new Tokenizer(tokenizerJson, config);
const texts = readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));

const decode = (ids, skip) =>
  ids.length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
const out = { ids: [], plain: [], decoded: [], decoded_skip: [] };
for (const text of texts) {
  const ids = tokenizer.encode(text, { add_special_tokens: true }).ids;
  out.ids.push(ids);
  out.plain.push(tokenizer.encode(text, { add_special_tokens: false }).ids);
  out.decoded.push(decode(ids, false));
  out.decoded_skip.push(decode(ids, true));
}
process.stdout.write(JSON.stringify(out));
