// clients.test.cjs — unmodified npm clients against keel's HTTP endpoints,
// served either by http_testserver (test scaffolding over a temp store,
// seeded from seed.tsv) or by a real keeld node (run.sh --keeld: a 3-node
// cluster seeded with etcdctl):
//   - cloud-config-client 1.6.x loads billing with profiles dev,db (sent
//     URL-encoded as dev%2Cdb) and sees the merged values, the most specific
//     list, and, with a label (a tag), the older revision;
//   - @openfeature/ofrep-provider with @openfeature/server-sdk evaluates a
//     boolean, a string (targeting) and a fractional-rollout flag; the
//     rollout's expected variants are computed here independently
//     (murmur3_x86_32 as flagd specifies), not taken from keel;
//   - keeld only: a flag changed through ANOTHER node (etcdctl) is seen by
//     the very next evaluation of the OFREP client (linearizable reads).
// Usage: node clients.test.cjs SERVER SEED NODE_MODULES_DIR
//   SERVER: the path of http_testserver, or the base URL of a keeld node
//   (http://127.0.0.1:PORT) — then KEEL_E2E_REVISIONS ("2 3": the seed's
//   revisions) and KEEL_E2E_WRITE_ENDPOINT (another node's client address
//   for etcdctl) must be set.
'use strict';
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const [server, seed, modules] = process.argv.slice(2);
const req = (name) => require(path.join(modules, name));
const configClient = req('cloud-config-client');
const { OpenFeature } = req('@openfeature/server-sdk');
const { OFREPProvider } = req('@openfeature/ofrep-provider');

// A keeld node serves already: nothing to start or stop.
function useNode(base) {
  const revisions = (process.env.KEEL_E2E_REVISIONS || '').split(/\s+/).filter(Boolean).map(Number);
  const port = Number(new URL(base).port);
  return Promise.resolve({ child: null, port, revisions });
}

function startServer() {
  if (/^https?:\/\//.test(server)) return useNode(server);
  const child = spawn(server, [seed, 'web'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const revisions = [];
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      const m = /^REVISION (\d+)$/.exec(line);
      if (m) revisions.push(Number(m[1]));
      const l = /^LISTENING port=(\d+)$/.exec(line);
      if (l) resolve({ child, port: Number(l[1]), revisions });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}) before listening`)));
  });
}

// murmur3_x86_32 over the UTF-8 bytes, seed 0, as an unsigned number.
function murmur3(str) {
  const b = Buffer.from(str, 'utf8');
  let h = 0;
  const c1 = 0xcc9e2d51, c2 = 0x1b873593;
  const n = b.length & ~3;
  for (let i = 0; i < n; i += 4) {
    let k = b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    k = Math.imul(k, c1); k = (k << 15) | (k >>> 17); k = Math.imul(k, c2);
    h ^= k; h = (h << 13) | (h >>> 19); h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  switch (b.length & 3) {
    case 3: k ^= b[n + 2] << 16; // fallthrough
    case 2: k ^= b[n + 1] << 8; // fallthrough
    case 1: k ^= b[n];
      k = Math.imul(k, c1); k = (k << 15) | (k >>> 17); k = Math.imul(k, c2); h ^= k;
  }
  h ^= b.length;
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// flagd's fractional: bucket = (h * total) >> 32; first running sum > bucket.
function expectedVariant(flagKey, targetingKey, weights) {
  const total = weights.reduce((s, [, w]) => s + w, 0);
  const bucket = Number((BigInt(murmur3(flagKey + targetingKey)) * BigInt(total)) >> 32n);
  let sum = 0;
  for (const [v, w] of weights) {
    sum += w;
    if (bucket < sum) return v;
  }
  throw new Error('no variant');
}

async function main() {
  const { child, port, revisions } = await startServer();
  try {
    assert.deepEqual(revisions, [2, 3], 'seed revisions');
    const endpoint = `http://127.0.0.1:${port}/config`;

    // --- Spring Cloud Config client ---
    const cfg = await configClient.load({ endpoint, name: 'billing', profiles: ['dev', 'db'] });
    assert.equal(cfg.get('server.port'), 7171, 'billing-dev wins over billing');
    assert.equal(cfg.get('db.pool'), 20, 'billing-db');
    assert.equal(cfg.get('name'), 'billing');
    assert.equal(cfg.get('greeting'), 'hello', 'from application');
    assert.equal(cfg.get('db.url'), 'jdbc:mysql://db/${name}', 'the Environment is not resolved');
    const obj = cfg.toObject({ merge: false });
    assert.deepEqual(obj.servers, ['dev-only'], 'the most specific list replaces the base list');
    assert.equal(obj.server.port, 7171);
    assert.equal(cfg.raw.version, '3');
    assert.deepEqual(cfg.raw.propertySources.map((s) => s.name),
      ['keel:billing-db', 'keel:application-db', 'keel:billing-dev', 'keel:billing', 'keel:application'],
      'most specific first, empty sources left out');
    console.log('ok   cloud-config-client: merged values at the current revision');

    const tagged = await configClient.load({ endpoint, name: 'billing', profiles: ['dev'], label: 'release-1' });
    assert.equal(tagged.get('server.port'), 7070, 'the tag pins revision 2');
    assert.equal(tagged.raw.version, '2');
    const byRev = await configClient.load({ endpoint, name: 'billing', profiles: 'dev', label: 'rev-3' });
    assert.equal(byRev.get('server.port'), 7171);
    console.log('ok   cloud-config-client: labels (tag, rev-N)');

    await assert.rejects(configClient.load({ endpoint, name: 'billing', profiles: ['dev'], label: 'nope' }),
      /404/, 'unknown label');
    console.log('ok   cloud-config-client: unknown label is an error');

    // --- OFREP ---
    await OpenFeature.setProviderAndWait(new OFREPProvider({
      baseUrl: `http://127.0.0.1:${port}`,
      headers: [['X-Keel-Flag-Set', 'web']],
    }));
    const client = OpenFeature.getClient();
    const b = await client.getBooleanDetails('bool-flag', false, {});
    assert.equal(b.value, true);
    assert.equal(b.variant, 'on');
    assert.equal(b.reason, 'STATIC');
    assert.equal(b.errorCode, undefined);
    assert.equal(b.flagMetadata.team, 'web');
    console.log('ok   ofrep: boolean');

    const s1 = await client.getStringDetails('color', 'none', { tier: 'gold' });
    assert.deepEqual([s1.value, s1.variant, s1.reason], ['#00f', 'blue', 'TARGETING_MATCH']);
    const s2 = await client.getStringDetails('color', 'none', { tier: 'silver' });
    assert.deepEqual([s2.value, s2.variant, s2.reason], ['#f00', 'red', 'DEFAULT']);
    console.log('ok   ofrep: string with targeting');

    const weights = [['a', 20], ['b', 30], ['c', 50]];
    const seen = new Set();
    for (let i = 0; i < 200; i++) {
      const tk = `user-${i}`;
      const want = expectedVariant('rollout', tk, weights);
      const r = await client.getStringDetails('rollout', 'none', { targetingKey: tk });
      assert.equal(r.variant, want, `rollout for ${tk}`);
      assert.equal(r.value, want.toUpperCase());
      assert.equal(r.reason, 'TARGETING_MATCH');
      seen.add(want);
    }
    assert.equal(seen.size, 3, 'every variant of the rollout is reached');
    console.log('ok   ofrep: fractional rollout (200 users, murmur3 computed independently)');

    const nf = await client.getBooleanDetails('missing-flag', false, {});
    assert.equal(nf.value, false);
    assert.equal(nf.errorCode, 'FLAG_NOT_FOUND');
    console.log('ok   ofrep: FLAG_NOT_FOUND falls back to the default');

    if (child === null) {
      // keeld: change a flag through another node; the write is acknowledged
      // before the next evaluation starts, so that evaluation must see it.
      const ep = process.env.KEEL_E2E_WRITE_ENDPOINT;
      assert.ok(ep, 'KEEL_E2E_WRITE_ENDPOINT is set');
      const etcdctl = (args, input) => execFileSync('etcdctl', [`--endpoints=${ep}`, ...args],
        { env: { ...process.env, ETCDCTL_API: '3' }, input, encoding: 'utf8' });
      const def = (v) => `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"${v}"}`;
      for (let i = 0; i < 5; i++) {
        etcdctl(['put', '/flags/web/bool-flag', def(i % 2 ? 'on' : 'off')]);
        const r = await client.getBooleanDetails('bool-flag', true, {});
        assert.equal(r.value, i % 2 === 1, `change ${i} written through another node is seen at once`);
        assert.equal(r.variant, i % 2 ? 'on' : 'off');
      }
      const c = await client.getStringDetails('color', 'none', { tier: 'gold' });
      assert.equal(c.value, '#00f', 'the rest of the set is unchanged');
      console.log('ok   ofrep: a flag changed through another node is seen by the next evaluation (5 times)');
    }
    await OpenFeature.close();
  } finally {
    if (child) child.stdin.end();
  }
  if (child) await new Promise((resolve) => child.on('exit', resolve));
}

main().then(() => console.log('PASS'), (err) => {
  console.error('FAIL', err);
  process.exit(1);
});
