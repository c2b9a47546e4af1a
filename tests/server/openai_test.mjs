// qlm-server through OpenAI's own npm client: chat and completions, streamed and not, stop
// strings, n > 1, logprobs, usage and cached tokens, error statuses, the API key; greedy output
// equal to qlm-run's for the same prompt, also with 8 clients streaming at once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  OpenAI, workDir, storiesModel, qwenModel, startServer, qlmRun, post, metrics,
} from './harness.mjs';

const dir = workDir('openai');
const stories = storiesModel(dir);
const qwen = qwenModel(dir);
const srv = await startServer(stories, ['--chat-template', 'chatml']);
const qsrv = await startServer(qwen, ['--parallel', '4']);
const client = srv.client();
const qclient = qsrv.client();

after(async () => {
  assert.deepEqual(await srv.stop(), { code: 0, signal: null });
  assert.deepEqual(await qsrv.stop(), { code: 0, signal: null });
});

const prompts = ['Once upon a time', 'The little dog', 'Lily and Ben went to', 'One day, a bird',
  'Tom had a red ball', 'The sun was', 'Mom said', 'There was a big tree'];

test('completions: greedy text equals qlm-run, with usage', async () => {
  const r = await client.completions.create({
    model: 'anything', prompt: prompts[0], max_tokens: 40, temperature: 0,
  });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.model, 'stories.qlm');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].text, qlmRun(stories, ['-p', prompts[0], '-n', '40', '--temp', '0']));
  assert.equal(r.usage.completion_tokens, 40);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 40);
  assert.equal(r.choices[0].finish_reason, 'length');
});

test('8 clients streaming at once each get qlm-run\'s greedy text', async () => {
  const want = prompts.map((p) => qlmRun(stories, ['-p', p, '-n', '64', '--temp', '0']));
  const got = await Promise.all(prompts.map(async (p) => {
    const stream = await client.completions.create({
      prompt: p, max_tokens: 64, temperature: 0, stream: true, model: 'x',
    });
    let text = '';
    let ids = new Set();
    let finish = null;
    for await (const chunk of stream) {
      ids.add(chunk.id);
      assert.equal(chunk.object, 'text_completion');
      text += chunk.choices[0].text;
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    assert.equal(ids.size, 1, 'one id on every chunk');
    assert.equal(finish, 'length');
    return text;
  }));
  assert.deepEqual(got, want);
});

test('chat: greedy reply equals qlm-run --chat with the same template', async () => {
  const messages = [{ role: 'system', content: 'You tell stories.' },
    { role: 'user', content: 'Tell me about a cat.' }];
  const file = path.join(dir, 'messages.json');
  fs.writeFileSync(file, JSON.stringify(messages));
  const r = await client.chat.completions.create({
    model: 'x', messages, max_tokens: 30, temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  const want = qlmRun(stories, ['--chat', '--chat-template', 'chatml', '--messages', file, '-n',
    '30', '--temp', '0']);
  assert.equal(r.choices[0].message.content, want);
});

test('chat streaming: role first, one id, usage chunk last with include_usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'x', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 12, temperature: 0,
    stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 12);
  for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  const finals = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(finals.length, 1);
  assert.equal(finals[0].choices[0].finish_reason, 'length');
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  const whole = await client.chat.completions.create({
    model: 'x', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 12, temperature: 0,
  });
  assert.equal(text, whole.choices[0].message.content);
});

test('stop strings cut the text and finish with "stop"', async () => {
  const full = qlmRun(stories, ['-p', prompts[0], '-n', '40', '--temp', '0']);
  const stop = ' Lily';
  assert.ok(full.includes(stop));
  const r = await client.completions.create({
    model: 'x', prompt: prompts[0], max_tokens: 40, temperature: 0, stop: [stop, 'zzz'],
  });
  assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('n > 1: every choice, seeded; streamed choices end on their own', async () => {
  const body = { model: 'x', prompt: prompts[1], max_tokens: 20, temperature: 1.0, seed: 7, n: 3 };
  const r = await client.completions.create(body);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(r.usage.completion_tokens, 60);
  const again = await client.completions.create(body);
  assert.deepEqual(again.choices.map((c) => c.text), r.choices.map((c) => c.text), 'same seed');
  const stream = await client.completions.create({ ...body, stream: true });
  const text = ['', '', ''];
  const finished = [0, 0, 0];
  for await (const c of stream) {
    for (const ch of c.choices) {
      text[ch.index] += ch.text;
      if (ch.finish_reason) finished[ch.index] += 1;
    }
  }
  assert.deepEqual(finished, [1, 1, 1]);
  assert.deepEqual(text, r.choices.map((c) => c.text));
});

test('a repeated prompt is served from the prefix cache', async () => {
  const messages = [{ role: 'user', content: 'Once upon a time there was a girl who liked to play in the park with her dog and her friends.' }];
  const a = await client.chat.completions.create({ model: 'x', messages, max_tokens: 4, temperature: 0 });
  const b = await client.chat.completions.create({ model: 'x', messages, max_tokens: 4, temperature: 0 });
  assert.ok(a.usage.prompt_tokens > 40);
  assert.equal(b.usage.prompt_tokens_details.cached_tokens, b.usage.prompt_tokens - 1);
  assert.equal(b.choices[0].message.content, a.choices[0].message.content);
});

test('logprobs: chat top_logprobs and completions logprobs', async () => {
  const r = await client.chat.completions.create({
    model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0,
    logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 6);
  for (const e of content) {
    assert.equal(e.top_logprobs.length, 3);
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs[0].token, e.token, 'greedy picks the most likely');
    assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob);
    assert.deepEqual(e.bytes, [...Buffer.from(e.token)]);
  }
  const c = await client.completions.create({
    model: 'x', prompt: prompts[0], max_tokens: 5, temperature: 0, logprobs: 2,
  });
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 5);
  assert.equal(lp.tokens.join(''), c.choices[0].text);
  assert.equal(Object.keys(lp.top_logprobs[0]).length, 2);
  assert.deepEqual(lp.text_offset.slice(0, 2), [0, lp.tokens[0].length]);
});

test('the Qwen2.5 tokenizer: chat through its own template, tokenize and detokenize', async () => {
  const r = await qclient.chat.completions.create({
    model: 'x', messages: [{ role: 'user', content: 'Write a haiku about C++.' }], max_tokens: 8,
    temperature: 0,
  });
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.usage.completion_tokens <= 8, true);
  const tok = await post(`${qsrv.url}/tokenize`, { content: 'Hello world, héllo <|im_end|>' });
  assert.equal(tok.status, 200);
  assert.deepEqual(tok.body.tokens.slice(0, 2), [9707, 1879]);  // "Hello", " world"
  assert.ok(tok.body.tokens.includes(151645), 'special tokens parsed');
  const detok = await post(`${qsrv.url}/detokenize`, { tokens: tok.body.tokens });
  assert.equal(detok.body.content, 'Hello world, héllo <|im_end|>');
});

test('the Qwen2.5-tokenizer model: greedy chat and completions equal qlm-run; streams, stop, n, cache', async () => {
  const messages = [{ role: 'user', content: 'Write a function that adds two numbers.' }];
  const file = path.join(dir, 'qwen-messages.json');
  fs.writeFileSync(file, JSON.stringify(messages));
  const wantChat = qlmRun(qwen, ['--chat', '--messages', file, '-n', '24', '--temp', '0']);
  const chat = await qclient.chat.completions.create({ model: 'x', messages, max_tokens: 24, temperature: 0 });
  assert.equal(chat.choices[0].message.content, wantChat);
  const stream = await qclient.chat.completions.create({
    model: 'x', messages, max_tokens: 24, temperature: 0, stream: true,
  });
  let streamed = '';
  for await (const c of stream) streamed += c.choices[0]?.delta?.content ?? '';
  assert.equal(streamed, chat.choices[0].message.content);
  const again = await qclient.chat.completions.create({ model: 'x', messages, max_tokens: 24, temperature: 0 });
  assert.equal(again.usage.prompt_tokens_details.cached_tokens, again.usage.prompt_tokens - 1);

  const prompt = 'def add(a, b):';
  const want = qlmRun(qwen, ['-p', prompt, '-n', '24', '--temp', '0']);
  const r = await qclient.completions.create({ model: 'x', prompt, max_tokens: 24, temperature: 0 });
  assert.equal(r.choices[0].text, want);
  const stop = want.slice(10, 13);
  const cut = await qclient.completions.create({ model: 'x', prompt, max_tokens: 24, temperature: 0, stop });
  assert.equal(cut.choices[0].text, want.slice(0, want.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, 'stop');
  const two = await qclient.completions.create({ model: 'x', prompt, max_tokens: 8, n: 2, seed: 3, temperature: 1 });
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
  assert.equal(two.usage.completion_tokens, 16);
});

test('error statuses', async () => {
  const url = srv.url;
  let r = await post(`${url}/v1/chat/completions`, '{"messages": [');
  assert.equal(r.status, 400);
  assert.equal(r.body.error.type, 'invalid_request_error');
  r = await post(`${url}/v1/completions`, { prompt: 'x', temperature: 'hot' });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.param, 'temperature');
  r = await post(`${url}/v1/completions`, { prompt: 'x', n: 17 });
  assert.equal(r.status, 400);
  r = await post(`${url}/v1/completions`, { prompt: 'x', max_tokens: -1 });
  assert.equal(r.status, 400);
  r = await post(`${url}/v1/completions`, { prompt: 'x', logit_bias: { 99999: 1 } });
  assert.equal(r.status, 400);
  r = await post(`${url}/v1/chat/completions`, {
    messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }],
  });
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /tool calling/);
  r = await post(`${url}/v1/chat/completions`, {
    messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' },
  });
  assert.equal(r.status, 400);
  r = await post(`${url}/v1/completions`, { prompt: 'once '.repeat(600) });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, 'context_length_exceeded');
  r = await post(`${url}/v1/nothing`, {});
  assert.equal(r.status, 404);
  r = await fetch(`${url}/v1/completions`);
  assert.equal(r.status, 405);
  await assert.rejects(client.completions.create({ model: 'x', prompt: 'x', top_p: 7 }),
    (e) => e instanceof OpenAI.BadRequestError);
  // The server goes on serving.
  const ok = await client.completions.create({ model: 'x', prompt: prompts[0], max_tokens: 3, temperature: 0 });
  assert.equal(ok.usage.completion_tokens, 3);
});

test('a model without a chat template answers chat requests with a 400 that says so', async () => {
  const bare = await startServer(stories);
  try {
    const r = await post(`${bare.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /--chat-template/);
  } finally {
    assert.equal((await bare.stop()).code, 0);
  }
});

test('--api-key: 401 without the key, served with it; /health is open', async () => {
  const locked = await startServer(stories, ['--api-key', 'sesame']);
  try {
    await assert.rejects(locked.client({ apiKey: 'wrong' }).models.list(),
      (e) => e instanceof OpenAI.AuthenticationError);
    const models = await locked.client({ apiKey: 'sesame' }).models.list();
    assert.equal(models.data[0].id, 'stories.qlm');
    assert.equal((await fetch(`${locked.url}/health`)).status, 200);
    assert.equal((await post(`${locked.url}/v1/completions`, { prompt: 'x' })).status, 401);
  } finally {
    assert.equal((await locked.stop()).code, 0);
  }
});

test('/v1/models, /health and /metrics', async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].id, 'stories.qlm');
  const health = await (await fetch(`${srv.url}/health`)).json();
  assert.deepEqual(health, { status: 'ok' });
  const m = await metrics(srv.url);
  assert.ok(m.qlm_generated_tokens_total > 0);
  assert.ok(m.qlm_prompt_tokens_cached_total > 0);
  assert.equal(m.qlm_requests_running, 0);
  assert.equal(m.qlm_kv_pages_used, 0);
  assert.ok(m['qlm_time_to_first_token_seconds_count'] > 0);
});

test('SIGTERM lets a running stream finish, then the server exits 0', async () => {
  const s = await startServer(qwen);
  const stream = await s.client().completions.create({
    model: 'x', prompt: 'def main():', max_tokens: 200, temperature: 0, stream: true,
  });
  let n = 0;
  let finish = null;
  for await (const c of stream) {
    if (n++ === 0) s.proc.kill('SIGTERM');
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.ok(finish);
  assert.deepEqual(await s.exited, { code: 0, signal: null });
});
