// Load generator for an OpenAI-compatible server (qlm-server, llama-server): C clients, each
// sending streamed /v1/completions of a distinct prompt of random token ids one after another;
// reports time to first token as the client sees it (p50/p99) and aggregate generated tokens/s.
// Usage: node bench/server_load.mjs --url http://127.0.0.1:8080 [--clients 1,4,16]
//          [--prompt-tokens 256] [--gen 128] [--requests 2] [--vocab 32000] [--label NAME]
// --requests: requests per client per run (a client of a 1-client run sends 4x that many).
import OpenAI from '../tests/reference/node_modules/openai/index.mjs';

function args() {
  const a = { url: 'http://127.0.0.1:8080', clients: '1,4,16', 'prompt-tokens': 256, gen: 128,
    requests: 2, vocab: 32000, label: '', seed: 1 };
  for (let i = 2; i < process.argv.length; i += 2) {
    const k = process.argv[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option --${k}`);
    a[k] = typeof a[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
  }
  return a;
}

// Deterministic distinct prompts: token ids from a seeded generator, avoiding the first 3 ids
// (BOS/EOS/UNK in most vocabularies).
function* ids(seed) {
  let s = BigInt(seed) * 0x9E3779B97F4A7C15n;
  for (;;) {
    s = (s + 0x9E3779B97F4A7C15n) & 0xFFFFFFFFFFFFFFFFn;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & 0xFFFFFFFFFFFFFFFFn;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & 0xFFFFFFFFFFFFFFFFn;
    yield z ^ (z >> 31n);
  }
}

function percentile(xs, p) {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function one(client, prompt, gen) {
  const t0 = performance.now();
  let ttft = null;
  let tokens = 0;
  const stream = await client.completions.create({
    model: 'bench', prompt, max_tokens: gen, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    if (chunk.choices?.length && ttft === null) ttft = performance.now() - t0;
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { ttft, tokens };
}

const a = args();
const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 600000 });
const gen = ids(a.seed);
const prompt = () => Array.from({ length: a['prompt-tokens'] },
  () => 3 + Number(gen.next().value % BigInt(a.vocab - 3)));
await one(client, prompt(), 4);  // warm-up (page faults, first allocations)
const rows = [];
for (const c of a.clients.split(',').map(Number)) {
  const perClient = c === 1 ? 4 * a.requests : a.requests;
  const t0 = performance.now();
  const results = (await Promise.all(Array.from({ length: c }, async () => {
    const out = [];
    for (let r = 0; r < perClient; ++r) out.push(await one(client, prompt(), a.gen));
    return out;
  }))).flat();
  const seconds = (performance.now() - t0) / 1000;
  const tokens = results.reduce((n, r) => n + r.tokens, 0);
  const ttfts = results.map((r) => r.ttft);
  rows.push({ label: a.label, clients: c, requests: results.length,
    ttft_p50_ms: percentile(ttfts, 50), ttft_p99_ms: percentile(ttfts, 99),
    tokens, seconds, tokens_per_second: tokens / seconds });
  console.error(JSON.stringify(rows.at(-1)));
}
console.log('| server | clients | requests | TTFT p50 ms | TTFT p99 ms | tokens | tok/s |');
console.log('|--------|--------:|---------:|------------:|------------:|-------:|------:|');
for (const r of rows) {
  console.log(`| ${r.label} | ${r.clients} | ${r.requests} | ${r.ttft_p50_ms.toFixed(0)} | ` +
    `${r.ttft_p99_ms.toFixed(0)} | ${r.tokens} | ${r.tokens_per_second.toFixed(1)} |`);
}
