// Keystroke replay against /infill: a real source file is typed into a buffer one character at a
// time; at every keystroke an llama.vim-shaped request goes out (the previous one is cancelled),
// split as llama.vim splits it: up to 256 lines before the cursor's line as input_prefix, the
// cursor line's text before the cursor as `prompt`, the rest of the line and up to 64 lines after
// it as input_suffix. Streams, to see the first token; reports median and p99 time to the first
// token and to the whole 16-token answer (the first request, cold, is reported apart).
// Usage: node bench/keystroke_replay.mjs --url http://127.0.0.1:8080 --file SRC
//          [--pretyped 120] [--keys 300] [--n-predict 16] [--label NAME]
// --pretyped: lines already in the buffer; --keys: characters then typed, one request each.
import fs from 'node:fs';

function args() {
  const a = { url: 'http://127.0.0.1:8080', file: '', pretyped: 120, keys: 300, 'n-predict': 16,
    label: '' };
  for (let i = 2; i < process.argv.length; i += 2) {
    const k = process.argv[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option --${k}`);
    a[k] = typeof a[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
  }
  if (!a.file) throw new Error('--file is required');
  return a;
}

function percentile(xs, p) {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// The request llama.vim sends for a buffer whose text before the cursor is `typed`.
function request(typed, nPredict) {
  const lines = typed.split('\n');
  const current = lines.pop();
  const prefixLines = lines.slice(-256);
  return {
    input_prefix: prefixLines.length ? `${prefixLines.join('\n')}\n` : '',
    input_suffix: '\n',  // the cursor is at the end of what is typed so far
    input_extra: [],
    prompt: current,
    n_predict: nPredict,
    n_indent: 0,  // llama.vim sends the line's indentation; 0 lets every answer reach n_predict
    top_k: 40, top_p: 0.99, stream: true, samplers: ['top_k', 'top_p', 'infill'],
    cache_prompt: true, t_max_prompt_ms: 500, t_max_predict_ms: 1000,
  };
}

// Sends one keystroke's request; resolves to {first, done} in ms (null if cut short).
async function keystroke(url, body, signal) {
  const t0 = performance.now();
  const res = await fetch(`${url}/infill`, { method: 'POST', body: JSON.stringify(body), signal });
  const reader = res.body.getReader();
  let first = null;
  let buffered = '';
  let tokens = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += Buffer.from(value).toString();
    let end;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const event = JSON.parse(buffered.slice(6, end));
      buffered = buffered.slice(end + 2);
      if (!event.stop && first === null) first = performance.now() - t0;
      if (event.stop) tokens = event.tokens_predicted;
    }
  }
  return { first, done: performance.now() - t0, tokens };
}

const a = args();
const text = fs.readFileSync(a.file, 'utf8');
const lines = text.split('\n');
const start = lines.slice(0, a.pretyped).join('\n').length + 1;
const cold = await keystroke(a.url, request(text.slice(0, start), a['n-predict']));
const firsts = [];
const dones = [];
let controller = null;
for (let k = 1; k <= a.keys && start + k <= text.length; ++k) {
  if (controller) controller.abort();
  controller = new AbortController();
  const r = await keystroke(a.url, request(text.slice(0, start + k), a['n-predict']),
    controller.signal);
  if (r.first !== null) firsts.push(r.first);
  if (r.tokens >= a['n-predict']) dones.push(r.done);
}
const row = {
  label: a.label, keystrokes: a.keys, cold_first_ms: cold.first, cold_done_ms: cold.done,
  first_p50_ms: percentile(firsts, 50), first_p99_ms: percentile(firsts, 99),
  done16_p50_ms: percentile(dones, 50), done16_p99_ms: percentile(dones, 99),
  completions_of_16: dones.length,
};
console.error(JSON.stringify(row));
console.log(`| ${row.label} | ${row.keystrokes} | ${row.cold_first_ms.toFixed(0)} | ` +
  `${row.first_p50_ms.toFixed(1)} | ${row.first_p99_ms.toFixed(1)} | ` +
  `${row.done16_p50_ms?.toFixed(1)} | ${row.done16_p99_ms?.toFixed(1)} | ${row.completions_of_16} |`);
