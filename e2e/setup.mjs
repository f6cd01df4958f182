// Creates what the browser tests need on a fresh hub, through the REST API:
// agents worker, bob and carol (all role worker), and room alpha (created by
// the master, bob a member). Prints {"worker","bob","carol"} tokens as JSON.
const url = process.env.E2E_URL;
const master = process.env.E2E_MASTER;

async function call(token, method, path, body) {
  const res = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

const tokens = {};
for (const id of ['worker', 'bob', 'carol']) {
  const r = await call(master, 'POST', '/agents', { agent_id: id, handle: id, role: 'worker' });
  tokens[id] = r.token;
}
await call(master, 'POST', '/rooms', { name: 'alpha', private: false });
await call(tokens.bob, 'POST', '/rooms/alpha/join');
process.stdout.write(`${JSON.stringify(tokens)}\n`);
