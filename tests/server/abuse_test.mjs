// qlm-server under abuse, bounded in count and time, on loopback: malformed and oversized
// requests, slow clients, 50 clients leaving mid-stream, a burst of 200 requests against
// --parallel 4 --queue 64. Afterwards it answers exactly as before, no KV page is held by a
// sequence and nothing waits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { workDir, qwenModel, startServer, post, metrics } from './harness.mjs';

const dir = workDir('abuse');
const qwen = qwenModel(dir);
const srv = await startServer(qwen, ['--parallel', '4', '--queue', '64', '--max-body', '65536',
  '--timeout', '1', '--keep-alive', '2']);
const [host, port] = srv.url.slice(7).split(':');
after(async () => assert.deepEqual(await srv.stop(), { code: 0, signal: null }));

const greedy = { prompt: 'def fib(n):', max_tokens: 24, temperature: 0 };
const reference = await post(`${srv.url}/v1/completions`, greedy);

// Raw bytes to the server; resolves to everything it answered before closing.
function raw(bytes, { holdMs = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(Number(port), host);
    let got = '';
    sock.on('data', (d) => { got += d.toString(); });
    sock.on('close', () => resolve(got));
    sock.on('error', () => {});
    sock.write(bytes);
    if (!holdMs) sock.end();
  });
}

async function settled() {
  let m;
  for (let i = 0; i < 200; ++i) {
    m = await metrics(srv.url);
    if (m.qlm_requests_running === 0 && m.qlm_requests_waiting === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return m;
}

test('malformed HTTP, oversized bodies and headers, slow clients', async () => {
  assert.match(await raw('GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400/);
  const big = 'x'.repeat(100000);
  assert.match(await raw(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\n\r\n${big}`),
    /^HTTP\/1\.1 413/);
  assert.match(await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(40000)}\r\n\r\n`),
    /^HTTP\/1\.1 431/);
  // Half a request, then silence: answered 408 and closed after --timeout.
  const slow = await raw('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"pro',
    { holdMs: 1 });
  assert.match(slow, /^HTTP\/1\.1 408/);
  // An idle connection is closed quietly.
  assert.equal(await raw('', { holdMs: 1 }), '');
});

test('malformed JSON, wrong types and absurd numbers get 4xx JSON errors', async () => {
  const url = `${srv.url}/v1/completions`;
  const bodies = [
    '', 'null', '[1,2]', '{"prompt": ', '['.repeat(60000),
    { prompt: 7 }, { prompt: [] }, { prompt: [-1] }, { prompt: [1e12] }, { prompt: 'x', max_tokens: 1e300 },
    { prompt: 'x', max_tokens: 'many' }, { prompt: 'x', temperature: 1e308 }, { prompt: 'x', top_k: -5 },
    { prompt: 'x', n: 0 }, { prompt: 'x', seed: 'abc' }, { prompt: 'x', stop: [''] },
    { prompt: 'x', stop: Array(100).fill('a') }, { prompt: 'x', logit_bias: { a: 1 } },
    { prompt: 'x', logit_bias: { 5: 1000 } }, { prompt: 'x', stream_options: 3 },
    { prompt: 'x', logprobs: 9 }, { prompt: 'x', presence_penalty: 5 },
  ];
  for (const b of bodies) {
    const r = await post(url, b);
    assert.ok(r.status >= 400 && r.status < 500, `${JSON.stringify(b).slice(0, 60)} -> ${r.status}`);
    assert.equal(typeof r.body?.error?.message, 'string', r.text.slice(0, 200));
  }
  const chat = `${srv.url}/v1/chat/completions`;
  for (const b of [{ messages: 'hi' }, { messages: [] }, { messages: [{ content: 'no role' }] },
    { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
    { messages: [{ role: 'user', content: 'x' }], top_logprobs: 3 }]) {
    const r = await post(chat, b);
    assert.equal(r.status, 400, `${JSON.stringify(b)} -> ${r.status}`);
  }
});

test('50 clients leaving mid-stream: their requests end and release their pages', async () => {
  const leave = async () => {
    const controller = new AbortController();
    const res = await fetch(`${srv.url}/v1/completions`, {
      method: 'POST', signal: controller.signal,
      body: JSON.stringify({ prompt: 'def main():', max_tokens: 2000, stream: true }),
    });
    const reader = res.body.getReader();
    await reader.read();  // the stream has begun
    controller.abort();
  };
  const results = await Promise.allSettled(Array.from({ length: 50 }, leave));
  assert.ok(results.every((r) => r.status === 'fulfilled' || r.reason.name === 'AbortError'));
  const m = await settled();
  assert.equal(m.qlm_requests_running, 0);
  assert.equal(m.qlm_kv_pages_used, 0);
});

test('a burst of 200 against --parallel 4 --queue 64: the excess gets 503, the rest complete', async () => {
  // Four long streams hold every running place, so the burst's fate does not depend on speed:
  // 64 of the other 196 wait in the queue and 132 are turned away.
  const holders = await Promise.all(Array.from({ length: 4 }, async (_, i) => {
    const controller = new AbortController();
    const res = await fetch(`${srv.url}/v1/completions`, {
      method: 'POST', signal: controller.signal,
      body: JSON.stringify({ prompt: `# holder ${i}`, max_tokens: 3000, stream: true }),
    });
    await res.body.getReader().read();
    return controller;
  }));
  let turnedAway = 0;
  const burst = Array.from({ length: 196 }, (_, i) => post(`${srv.url}/v1/completions`,
    { prompt: `# task ${i}\ndef f():`, max_tokens: 16, temperature: 0.7, seed: i })
    .then((r) => { if (r.status === 503) turnedAway += 1; return r; }));
  for (let i = 0; i < 400; ++i) {
    const m = await metrics(srv.url);
    if (m.qlm_requests_waiting === 64 && turnedAway === 132) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  for (const h of holders) h.abort();
  const results = await Promise.all(burst);
  const busy = results.filter((r) => r.status === 503);
  const ok = results.filter((r) => r.status === 200);
  assert.equal(busy.length, 132, results.map((r) => r.status).join(','));
  assert.equal(ok.length, 64);
  for (const r of busy) {
    assert.equal(r.headers.get('retry-after'), '1');
    assert.match(r.body.error.message, /busy/);
  }
  for (const r of ok) {
    const c = r.body.choices[0];
    assert.ok(c.finish_reason === 'length' ? r.body.usage.completion_tokens === 16 : c.finish_reason === 'stop');
  }
});

test('afterwards: the same answers, nothing held, nothing waiting', async (t) => {
  const m = await settled();
  assert.equal(m.qlm_requests_running, 0);
  assert.equal(m.qlm_requests_waiting, 0);
  assert.equal(m.qlm_kv_pages_used, 0);
  // A connection that fails before any answer is tried once more, with its cause kept: it was
  // seen once in CI ("fetch failed" on a fresh connection, the server up and exiting 0 after it)
  // and never in 25 runs under load here. The property checked is the answer, not that socket.
  let again;
  try {
    again = await post(`${srv.url}/v1/completions`, greedy);
  } catch (e) {
    t.diagnostic(`retried after: ${e.message}`);
    again = await post(`${srv.url}/v1/completions`, greedy);
  }
  assert.equal(again.status, 200);
  assert.equal(again.body.choices[0].text, reference.body.choices[0].text);
});
