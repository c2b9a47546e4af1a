// Times Hugging Face's tokenizers.js (tests/reference/node_modules) encoding one text as
// transformers tokenizes a rendered chat prompt (add_special_tokens: false), for comparison with
// qlm_bench_chat's chat/tokenize on the same text (qlm_bench_chat --prompt_out=FILE writes it).
// Usage: node bench/hf_tokenize_bench.mjs TOKENIZER_JSON TOKENIZER_CONFIG_JSON|- TEXT_FILE [REPS]
// Prints the token count, whether the ids equal qlm's (TEXT_FILE.ids.json, when present), and the
// median wall and CPU time per encode over REPS timed runs (default 200) after 20 warm-up runs.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/reference/package.json", import.meta.url));
const { Tokenizer } = require("@huggingface/tokenizers");

const [tokPath, configPath, textPath, repsArg] = process.argv.slice(2);
const reps = repsArg === undefined ? 200 : Number(repsArg);
const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(tokPath, "utf8")),
  configPath === "-" ? {} : JSON.parse(readFileSync(configPath, "utf8")),
);
const text = readFileSync(textPath, "utf8");
const encode = () => tokenizer.encode(text, { add_special_tokens: false }).ids;

const ids = encode();
let same = "no qlm ids to compare";
if (existsSync(`${textPath}.ids.json`)) {
  const ours = JSON.parse(readFileSync(`${textPath}.ids.json`, "utf8"));
  same = ours.length === ids.length && ours.every((v, i) => v === ids[i]) ? "yes" : "NO";
}
for (let i = 0; i < 20; ++i) encode();
// Wall and CPU time (the process's, all threads) per encode, in microseconds.
const wall = [];
const cpu = [];
for (let i = 0; i < reps; ++i) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  encode();
  wall.push(Number(process.hrtime.bigint() - t0) / 1e3);
  const c = process.cpuUsage(c0);
  cpu.push(c.user + c.system);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = (us) => (ids.length / us * 1e6).toFixed(0);
const [w, c, best] = [median(wall), median(cpu), Math.min(...wall)];
console.log(`tokenizers.js ${process.version}: ${text.length} chars, ${ids.length} tokens, ` +
            `ids equal qlm's: ${same}`);
console.log(`encode (add_special_tokens=false), ${reps} runs after 20 warm-up: median ` +
            `${w.toFixed(0)} us wall, ${c.toFixed(0)} us CPU (${rate(c)} tokens/s of CPU); ` +
            `best ${best.toFixed(0)} us wall (${rate(best)} tokens/s)`);
