// qlm-server's /infill with the bodies llama.vim sends (examples/llama.vim in llama.cpp): greedy
// content equal to qlm-run --infill, input_extra, response_fields, the warm-up request that only
// fills the cache, streaming, n_indent, and a request per keystroke that cancels the last one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  workDir, storiesModel, qwenModel, startServer, qlmRun, post, metrics,
} from './harness.mjs';

const dir = workDir('infill');
const qwen = qwenModel(dir);
const srv = await startServer(qwen, ['--parallel', '4']);
after(async () => assert.deepEqual(await srv.stop(), { code: 0, signal: null }));

const extraFile = path.join(dir, 'util.py');
const extraText = 'def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n'.repeat(4);
fs.writeFileSync(extraFile, extraText);
const prefix = 'import util\n\n\ndef area(w, h):\n    ';
const suffix = '\n\nprint(area(2, 3))\n';

// The fields llama.vim reads, as it asks for them.
const responseFields = ['content', 'timings/prompt_n', 'timings/prompt_ms',
  'timings/prompt_per_token_ms', 'timings/prompt_per_second', 'timings/predicted_n',
  'timings/predicted_ms', 'timings/predicted_per_token_ms', 'timings/predicted_per_second',
  'truncated', 'tokens_cached'];

function vimRequest(extra = {}) {
  return {
    input_prefix: prefix, input_suffix: suffix,
    input_extra: [{ text: extraText, time: 1700000000, filename: extraFile }],
    prompt: 'ret', n_predict: 16, n_indent: 4, top_k: 40, top_p: 0.99, stream: false,
    samplers: ['top_k', 'top_p', 'infill'], cache_prompt: true, t_max_prompt_ms: 500,
    t_max_predict_ms: 3000, id_slot: -1, ...extra,
  };
}

test('greedy /infill content equals qlm-run --infill', async () => {
  const r = await post(`${srv.url}/infill`, vimRequest({ temperature: 0, n_indent: 0 }));
  assert.equal(r.status, 200, r.text);
  const want = qlmRun(qwen, ['--infill', '--fim-prefix', prefix, '--fim-suffix', suffix, '-p',
    'ret', '--extra', extraFile, '-n', '16', '--temp', '0']);
  assert.equal(r.body.content, want);
  assert.equal(r.body.stop, true);
  assert.equal(r.body.tokens_predicted, r.body.tokens.length);
  for (const k of ['prompt_n', 'prompt_ms', 'predicted_n', 'predicted_ms', 'predicted_per_second']) {
    assert.equal(typeof r.body.timings[k], 'number', k);
  }
  assert.equal(r.body.truncated, false);
  assert.ok(['eos', 'limit', 'word'].includes(r.body.stop_type));
});

test('response_fields picks and flattens fields as llama.cpp does', async () => {
  const r = await post(`${srv.url}/infill`, vimRequest({ response_fields: responseFields }));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body).sort(), [...responseFields].sort());
  assert.equal(typeof r.body['timings/prompt_n'], 'number');
  assert.equal(typeof r.body.tokens_cached, 'number');
  const none = await post(`${srv.url}/infill`, vimRequest({ response_fields: ['no/such', 'timings/x'] }));
  assert.deepEqual(none.body, {});
});

test('a warm-up request (n_predict 0 or 1) fills the cache for the next one', async () => {
  const otherExtra = [{ text: 'class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n'.repeat(6), filename: 'point.py' }];
  for (const n_predict of [0, 1]) {
    const warm = await post(`${srv.url}/infill`, {
      input_prefix: '', input_suffix: '', input_extra: otherExtra, prompt: '', n_predict,
      temperature: 0.0, stream: false, samplers: ['temperature'], cache_prompt: true,
      t_max_prompt_ms: 1, t_max_predict_ms: 1, response_fields: [''],
    });
    assert.equal(warm.status, 200, warm.text);
  }
  const r = await post(`${srv.url}/infill`, { ...vimRequest(), input_extra: otherExtra });
  assert.equal(r.status, 200);
  // Whole pages of the extra context came from the cache: only the rest was evaluated.
  assert.ok(r.body.timings.prompt_n <= r.body.tokens_evaluated - 64,
    `${r.body.timings.prompt_n} of ${r.body.tokens_evaluated}`);
});

test('streamed /infill gives the same content, then a final chunk with stop', async () => {
  const whole = await post(`${srv.url}/infill`, vimRequest({ temperature: 0, n_indent: 0 }));
  const res = await fetch(`${srv.url}/infill`, {
    method: 'POST', body: JSON.stringify(vimRequest({ temperature: 0, n_indent: 0, stream: true })),
  });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const events = (await res.text()).split('\n\n').filter((e) => e).map((e) => {
    assert.ok(e.startsWith('data: '));
    return JSON.parse(e.slice(6));
  });
  const last = events.at(-1);
  assert.equal(last.stop, true);
  assert.equal(typeof last.timings.predicted_n, 'number');
  assert.ok(events.slice(0, -1).every((e) => e.stop === false));
  assert.equal(events.map((e) => e.content).join(''), whole.body.content);
});

test('n_indent: lines after the first are indented at least that much, or cut', async () => {
  // Lengths vary so that some requests end just after a line's first token: that line is checked
  // too (a line may end the text only as indentation).
  for (let seed = 0; seed < 12; ++seed) {
    const r = await post(`${srv.url}/infill`,
      vimRequest({ n_indent: 4, n_predict: 16 + 5 * seed, seed, temperature: 1.0 }));
    assert.equal(r.status, 200);
    const lines = r.body.content.split('\n').slice(1);
    lines.forEach((line, i) => {
      const indent = line.match(/^[ \t]*/)[0].length;
      assert.ok(indent >= 4 || (i === lines.length - 1 && indent === line.length),
        JSON.stringify(r.body.content));
    });
  }
});

test('n_indent checks the line a request ends on', async () => {
  // Find a sampled text whose second line starts, within its first token, with a character at
  // indentation < 4; asked again for exactly that many tokens, the line must be cut, not returned.
  let found = false;
  for (let seed = 0; seed < 16 && !found; ++seed) {
    const res = await fetch(`${srv.url}/infill`, {
      method: 'POST',
      body: JSON.stringify(vimRequest({ n_indent: 0, n_predict: 64, seed, temperature: 1.0, stream: true })),
    });
    const pieces = (await res.text()).split('\n\n').filter((e) => e).map((e) => JSON.parse(e.slice(6)))
      .filter((e) => !e.stop).map((e) => e.content);
    let text = '';
    for (let j = 0; j < pieces.length && !found; ++j) {
      const nl = text.indexOf('\n');
      text += pieces[j];
      if (nl < 0) continue;
      const line = text.slice(nl + 1);
      const indent = line.match(/^[ \t]*/)[0].length;
      if (indent === line.length) continue;  // only indentation so far
      if (indent >= 4) break;  // a well indented second line: try another seed
      found = true;
      const r = await post(`${srv.url}/infill`,
        vimRequest({ n_indent: 4, n_predict: j + 1, seed, temperature: 1.0 }));
      assert.equal(r.status, 200);
      assert.equal(r.body.content, text.slice(0, nl + 1 + indent), JSON.stringify({ text, seed, j }));
    }
  }
  assert.ok(found, 'no sampled text had a second line to cut');
});

test('a request per keystroke, each cancelling the last: nothing piles up', async () => {
  const before = await metrics(srv.url);
  let typed = '';
  const pending = [];
  let controller = null;
  for (const ch of 'return w * h') {
    typed += ch;
    if (controller) controller.abort();  // llama.vim kills the previous curl
    controller = new AbortController();
    pending.push(fetch(`${srv.url}/infill`, {
      method: 'POST', signal: controller.signal,
      body: JSON.stringify(vimRequest({ prompt: typed, n_predict: 3000, n_indent: 0 })),
    }).then((r) => r.json()).catch((e) => e.name));
    await new Promise((r) => setTimeout(r, 30));
  }
  controller.abort();
  const results = await Promise.all(pending);
  assert.ok(results.every((r) => r === 'AbortError'));
  // Within a few steps every request is gone and its pages are released.
  let m;
  for (let i = 0; i < 100; ++i) {
    m = await metrics(srv.url);
    if (m.qlm_requests_running === 0 && m.qlm_requests_waiting === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(m.qlm_requests_running, 0);
  assert.equal(m.qlm_requests_waiting, 0);
  assert.equal(m.qlm_kv_pages_used, 0);
  // (A request aborted before it was read whole never starts, so not all 12 need show.)
  assert.ok(m.qlm_generations_cancelled_total > before.qlm_generations_cancelled_total);
});

test('bad infill requests get 400s; a model without FIM tokens says so', async () => {
  let r = await post(`${srv.url}/infill`, { input_suffix: '' });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.param, 'input_prefix');
  r = await post(`${srv.url}/infill`, { input_prefix: '', input_suffix: '', input_extra: [{ filename: 'x' }] });
  assert.equal(r.status, 400);
  r = await post(`${srv.url}/infill`, { input_prefix: '', input_suffix: '', n_predict: 'lots' });
  assert.equal(r.status, 400);
  const stories = await startServer(storiesModel(dir));
  try {
    r = await post(`${stories.url}/infill`, { input_prefix: 'a', input_suffix: 'b' });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /fill-in-the-middle/);
  } finally {
    assert.equal((await stories.stop()).code, 0);
  }
});
