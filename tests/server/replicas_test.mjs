// Two qlm-server replicas behind nginx on loopback, with consistent hashing on a header the
// client chooses (docs/serving.md, "Scale beyond one machine"): each user's requests land on one
// replica, where their prefix is cached; killing a replica sends its users to the other.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { workDir, storiesModel, startServer, post } from './harness.mjs';

const nginxBin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
if (!nginxBin) throw new Error('nginx is missing (scripts/install-deps.sh installs nginx-light)');

const dir = workDir('replicas');
const stories = storiesModel(dir);
const replicas = [
  await startServer(stories, ['--alias', 'replica-1']),
  await startServer(stories, ['--alias', 'replica-2']),
];

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const conf = path.join(dir, 'nginx.conf');
fs.writeFileSync(conf, `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream qlm {
    hash $http_x_session_id consistent;
${replicas.map((r) => `    server ${r.url.slice(7)} max_fails=1 fail_timeout=30s;`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://qlm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 60s;
      proxy_next_upstream error timeout;
    }
  }
}
`);
const nginx = spawn(nginxBin, ['-p', dir, '-c', conf, '-e', path.join(dir, 'nginx-error.log')],
  { stdio: 'ignore' });
const url = `http://127.0.0.1:${port}`;
for (let i = 0; ; ++i) {
  try {
    if ((await fetch(`${url}/health`)).status === 200) break;
  } catch { /* not yet listening */ }
  if (i > 200) throw new Error(`nginx did not start: ${fs.readFileSync(path.join(dir, 'nginx-error.log'), 'utf8')}`);
  await new Promise((r) => setTimeout(r, 25));
}

after(async () => {
  nginx.kill('SIGTERM');
  await Promise.all(replicas.map((r) => r.stop()));
});

const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
const ask = (user, turn) => post(`${url}/v1/completions`, {
  prompt: `${user} once upon a time there was a little girl who liked to play in the big park with her dog and her friends, turn ${turn}`,
  max_tokens: 4, temperature: 0,
}, { 'X-Session-Id': user });

const home = new Map();  // user -> the replica that served them

test('each user sticks to one replica, where their prefix is cached', async () => {
  for (const user of users) {
    for (let turn = 0; turn < 3; ++turn) {
      const r = await ask(user, 0);
      assert.equal(r.status, 200, r.text);
      if (turn === 0) home.set(user, r.body.model);
      assert.equal(r.body.model, home.get(user), `${user} moved`);
      if (turn > 0) {
        assert.equal(r.body.usage.prompt_tokens_details.cached_tokens, r.body.usage.prompt_tokens - 1);
      }
    }
  }
  assert.equal(new Set(home.values()).size, 2, 'users are spread over both replicas');
});

test('killing a replica sends its users to the other', async () => {
  replicas[0].proc.kill('SIGKILL');
  await replicas[0].exited;
  for (const user of users) {
    const r = await ask(user, 1);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.model, 'replica-2');
  }
  // Moved users are cached on their new replica from then on.
  const moved = users.find((u) => home.get(u) === 'replica-1');
  const again = await ask(moved, 1);
  assert.equal(again.body.usage.prompt_tokens_details.cached_tokens, again.body.usage.prompt_tokens - 1);
});
