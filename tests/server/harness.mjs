// What the qlm-server tests share: the models they serve (converted into the test's own
// directory), starting and stopping a server on a free loopback port, qlm-run as the reference
// for greedy outputs, and OpenAI's own client (tests/reference/package.json pins it).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from '../reference/node_modules/openai/index.mjs';

export { OpenAI };

export const binDir = process.env.QLM_BIN_DIR;
export const sharedDir = process.env.QLM_SHARED_DIR;
if (!binDir || !sharedDir || !process.env.QLM_TEST_TMP) {
  throw new Error('set QLM_BIN_DIR, QLM_SHARED_DIR and QLM_TEST_TMP (ctest does)');
}

const tool = (name) => path.join(binDir, name);

// A fresh directory for one test file.
export function workDir(name) {
  const dir = path.join(process.env.QLM_TEST_TMP, `server-${name}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

// The real stories260K model, q8.
export function storiesModel(dir) {
  const out = path.join(dir, 'stories.qlm');
  execFileSync(tool('qlm-convert'), [path.join(sharedDir, 'models/stories260K'), '-o', out,
    '--type', 'q8'], { stdio: 'pipe' });
  return out;
}

// A small random-weight model with the real Qwen2.5 tokenizer (FIM tokens, chat template).
export function qwenModel(dir, { layers = 2, hidden = 64 } = {}) {
  const tokDir = path.join(sharedDir, 'tokenizers/qwen2.5-0.5b');
  const config = JSON.parse(fs.readFileSync(path.join(tokDir, 'config.json'), 'utf8'));
  Object.assign(config, {
    hidden_size: hidden, intermediate_size: 2 * hidden, num_attention_heads: 4,
    num_key_value_heads: 2, num_hidden_layers: layers,
  });
  const cfg = path.join(dir, 'qwen-config.json');
  fs.writeFileSync(cfg, JSON.stringify(config));
  const ckpt = path.join(dir, 'qwen-ckpt');
  execFileSync(tool('qlm-synth'), ['--config', cfg, '--tokenizer', tokDir, '-o', ckpt],
    { stdio: 'pipe' });
  const out = path.join(dir, 'qwen.qlm');
  execFileSync(tool('qlm-convert'), [ckpt, '-o', out, '--type', 'q8'], { stdio: 'pipe' });
  return out;
}

// Starts qlm-server on a free loopback port; resolves once it prints "listening on".
export function startServer(model, args = [], { timeoutMs = 30000 } = {}) {
  const proc = spawn(tool('qlm-server'), ['-m', model, '--port', '0', '-t', '1', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`qlm-server did not start:\n${log}`)), timeoutMs);
    const logFile = path.join(process.env.QLM_TEST_TMP, `qlm-server-${proc.pid}.log`);
    proc.stderr.on('data', (d) => {
      log += d.toString();
      fs.appendFileSync(logFile, d);  // kept for a failure's post-mortem
      const m = log.match(/listening on ([0-9.]+):(\d+)/);
      if (m && !proc.started) {
        proc.started = true;
        clearTimeout(timer);
        const url = `http://${m[1]}:${m[2]}`;
        resolve({
          url, proc, exited,
          log: () => log,
          client: (opts = {}) => new OpenAI({
            baseURL: `${url}/v1`, apiKey: opts.apiKey ?? 'none', maxRetries: 0, timeout: 120000,
          }),
          // SIGTERM, then the exit status.
          stop: async () => { proc.kill('SIGTERM'); return exited; },
        });
      }
    });
    exited.then(({ code }) => {
      if (!proc.started) { clearTimeout(timer); reject(new Error(`qlm-server exited ${code}:\n${log}`)); }
    });
  });
}

// qlm-run's stdout (the generated text) for the same model and settings.
export function qlmRun(model, args) {
  return execFileSync(tool('qlm-run'), ['-m', model, '-t', '1', '--kv-type', 'f16', ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// A failed fetch() says only "fetch failed": rethrows with its cause (a socket error's code and
// message), so a failure in CI can be read from the log.
function explained(what) {
  return (e) => {
    const c = e?.cause;
    throw new Error(`${what}: ${e?.message}${c ? ` (${c.code ?? c.name}: ${c.message})` : ''}`,
      { cause: e });
  };
}

// fetch() with a JSON body; resolves to {status, headers, body (parsed when JSON), text}.
export async function post(url, body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  }).catch(explained(`POST ${url}`));
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body: json, text };
}

// Prometheus text -> {name{labels}: value}.
export async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`).catch(explained(`GET ${url}/metrics`))).text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}
