#!/usr/bin/env node
// crosscheck.cjs — compares keel's flag evaluation with @openfeature/flagd-core.
//
// A seeded generator builds flagd flag files (every JsonLogic operator flagd
// accepts, fractional rollouts of many weights, $ref evaluators, disabled
// flags, missing/null default variants, type mismatches, missing context
// keys) and evaluation contexts. Each case is evaluated by flagd-core under
// node and by keel (crosscheck-driver, the C library); value, variant,
// reason and error code must be equal for every case.
//
// usage: node crosscheck.cjs --driver PATH --flagd-core DIR [--cases N]
//        [--seed S] [--dump FILE]
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const CASES = Number(args.cases || 12000);
const SEED = Number(args.seed || 20260101);
if (!args.driver || !args['flagd-core']) {
  console.error('usage: crosscheck.cjs --driver PATH --flagd-core DIR [--cases N] [--seed S]');
  process.exit(2);
}
const { FlagdCore } = require(path.resolve(args['flagd-core']));

// ---- seeded PRNG (mulberry32) ----
let state = SEED >>> 0;
function rnd() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];
const chance = (p) => rnd() < p;

// ---- contexts ----
const USERS = ['user-1', 'user-2', 'alice', 'bob', 'carol@example.com', 'u-42', 'X', 'tenant/7', 'a.b.c', '12345'];
const STRINGS = ['DE', 'US', 'fr', 'Müller', 'ß', '日本', 'é', 'pro', 'free', 'beta', '', 'abc', 'a@example.com', 'b@test.org', 'v1.2.3', '42', '3.5', ' 7 ', '0x10', 'true', 'null', 'red', 'on', 'off'];
const VERSIONS = ['1.2.3', 'v2.0.0', '2.0.0-beta.1', '2.0.0-alpha', '1.2', '2', '1.10.0', 'bad', '01.2.3', '1.2.3+build.5', 'V3.1.4', '2.0.0-rc.1', '2.0.0-rc.10'];
function scalar() {
  switch (int(7)) {
    case 0: return int(100);
    case 1: return int(2000) / 8 - 50;
    case 2: return pick(STRINGS);
    case 3: return chance(0.5);
    case 4: return null;
    case 5: return String(int(100));
    default: return pick(['DE', 'US', 'pro', 'free']);
  }
}
function contextValue(key) {
  switch (key) {
    case 'targetingKey': return chance(0.9) ? pick(USERS) + (chance(0.5) ? String(int(1000)) : '') : pick(['', 7]);
    case 'email': return pick(['a@example.com', 'b@test.org', 'ceo@example.com', 'x@corp.example.com', '', 5]);
    case 'age': return pick([int(90), int(90), '42', 'old', null, true, 17.5, -3]);
    case 'country': return pick(['DE', 'US', 'FR', 'de', 'GB', null]);
    case 'version': return pick(VERSIONS.concat([2, 1.5]));
    case 'tags': return chance(0.8) ? Array.from({ length: int(4) }, () => pick(['a', 'b', 'beta', 'pro', 'x'])) : pick(['a', null, 3]);
    case 'list': return Array.from({ length: int(5) }, () => int(10) - 2);
    case 'plan': return pick(['free', 'pro', 'enterprise', null, 'red', 'blue', 'on', 'off', 'true', 'false', 'one', 'two']);
    case 'nested': return chance(0.8) ? { a: { b: scalar(), c: [1, 2, 3] }, n: scalar() } : pick([null, 'str', { a: null }]);
    case 'score': return pick([int(100), int(1000) / 10, '50', 0, -1, null]);
    case 'flag': return pick([true, false, 0, 1, '', 'yes', null]);
    case 'dotted.key': return scalar();
    default: return scalar();
  }
}
const CTX_KEYS = ['targetingKey', 'email', 'age', 'country', 'version', 'tags', 'list', 'plan', 'nested', 'score', 'flag', 'misc', 'dotted.key'];
function context() {
  const c = {};
  for (const k of CTX_KEYS) if (chance(k === 'targetingKey' ? 0.85 : 0.6)) c[k] = contextValue(k);
  return c;
}

// ---- JsonLogic generator ----
const VAR_PATHS = ['targetingKey', 'email', 'age', 'country', 'version', 'tags', 'list', 'plan', 'nested.a.b', 'nested.n',
  'nested.a.c', 'score', 'flag', 'misc', 'missing', 'nested.x.y', '$flagd.flagKey', '$flagd.timestamp', 'tags.0', 'list.length', '',
  'nested.a.c.1', 'nested.a.c.length', 'dotted\\.key', 'email.length', '$flagd', 'nested.a.b.c.d', 'list.9'];
function varExpr() {
  const p = pick(VAR_PATHS);
  if (chance(0.25)) return { var: [p, scalar()] };
  if (chance(0.1)) return { var: [p] };
  return { var: p };
}
function literal() {
  return chance(0.85) ? scalar() : pick([[1, 2], ['a', 'b'], [], {}]);
}
// safe: the value is embedded where flagd-core's compiled JavaScript loses
// operator precedence (a cat operand, an iterator's array): and, or, all,
// missing and missing_some compile to an unparenthesized `c ? x : y` there.
// docs/flags.md lists this difference; such rules are not generated.
const UNSAFE = new Set(['and', 'or', 'all', 'missing', 'missing_some']);
function value(d, safe) {
  const v = value1(d);
  if (safe && v && typeof v === 'object' && !Array.isArray(v) && UNSAFE.has(Object.keys(v)[0])) return varExpr();
  return v;
}
function value1(d) {
  if (d <= 0 || chance(0.3)) return chance(0.6) ? varExpr() : literal();
  switch (int(17)) {
    case 0: return { '+': Array.from({ length: 1 + int(3) }, () => numArg(d - 1)) };
    case 1: return { '-': Array.from({ length: 1 + int(2) }, () => numArg(d - 1)) };
    case 2: return { '*': Array.from({ length: 1 + int(3) }, () => numArg(d - 1)) };
    case 3: return { '/': [numArg(d - 1), numArg(d - 1)] };
    case 4: return { '%': [numArg(d - 1), numArg(d - 1)] };
    case 5: return { [pick(['min', 'max'])]: Array.from({ length: int(4) }, () => numArg(d - 1)) };
    case 6: return { cat: Array.from({ length: int(4) }, () => value(d - 1, true)) };
    case 7: return { substr: [strArg(d - 1), int(9) - 4].concat(chance(0.5) ? [int(9) - 4] : []) };
    case 8: return { merge: Array.from({ length: int(4) }, () => value(d - 1)) };
    case 9: return { map: [arrArg(d - 1), pick([{ '*': [{ var: '' }, 2] }, { cat: ['x', { var: '' }] }, { var: '' }, { '+': [{ var: '' }, 1] }])] };
    case 10: return { filter: [arrArg(d - 1), pick([{ '>': [{ var: '' }, 2] }, { '==': [{ var: '' }, 'beta'] }, { var: '' }, { '!': { var: '' } }])] };
    case 11: return { reduce: [arrArg(d - 1), pick([{ '+': [{ var: 'current' }, { var: 'accumulator' }] }, { cat: [{ var: 'accumulator' }, { var: 'current' }] }, { max: [{ var: 'current' }, { var: 'accumulator' }] }])].concat(chance(0.7) ? [pick([0, '', 10])] : []) };
    case 12: return chance(0.7) ? { if: [cond(d - 1), value(d - 1), value(d - 1)] } : { if: [cond(d - 1), value(d - 1)] };
    case 13: return { missing: Array.from({ length: 1 + int(3) }, () => pick(VAR_PATHS)) };
    case 14: return { [pick(['or', 'and'])]: Array.from({ length: 1 + int(3) }, () => value(d - 1)) };
    case 15: // operands given as one expression instead of a list
      return { [pick(['+', '-', '*', 'cat', 'merge', 'min', 'max', '!', '!!', 'in', 'substr', 'missing'])]: pick([varExpr(), { var: 'list' }, { var: 'tags' }, { merge: [{ var: 'list' }, 1] }, scalar()]) };
    default: return varExpr();
  }
}
function numArg(d) {
  if (chance(0.5)) return pick([varExpr(), { var: 'age' }, { var: 'score' }, { var: 'list.length' }]);
  if (chance(0.6)) return pick([int(20), int(200) / 4, -3, 0.5, 7]);
  if (chance(0.5)) return pick(['5', '2.5', true, null]);
  return value(d);
}
function strArg(d) {
  return chance(0.7) ? pick([{ var: 'email' }, { var: 'targetingKey' }, { var: 'country' }, { var: 'plan' }, 'hello world']) : value(d);
}
function arrArg(d) {
  return chance(0.7) ? pick([{ var: 'tags' }, { var: 'list' }, [1, 2, 3, 4], ['beta', 'x'], { var: 'nested.a.c' }, { var: 'missing' }]) : value(d, true);
}
const CMP = ['==', '===', '!=', '!==', '<', '<=', '>', '>='];
function cond(d) {
  if (d <= 0) return pick([{ var: 'flag' }, { '==': [{ var: 'country' }, 'DE'] }, { '>': [{ var: 'age' }, 18] }, true, false]);
  switch (int(15)) {
    case 0: case 1: {
      const op = pick(CMP);
      if (op.length <= 2 && op[0] !== '=' && op[0] !== '!' && chance(0.3)) return { [op]: [numArg(d - 1), numArg(d - 1), numArg(d - 1)] };
      return { [op]: [value(d - 1), chance(0.5) ? scalar() : value(d - 1)] };
    }
    case 2: return { in: [pick([{ var: 'country' }, { var: 'email' }, 'beta', 'b', { var: 'targetingKey' }, 3]), pick([['DE', 'US', 'FR'], { var: 'tags' }, { var: 'email' }, 'example.com', { var: 'list' }, ['user-1', 'alice', 'bob']])] };
    case 3: return { [pick(['starts_with', 'ends_with'])]: [strArg(d - 1), pick(['a', 'user', '@example.com', '.org', '', 'DE', { var: 'country' }])] };
    case 4: return { sem_ver: [pick([{ var: 'version' }, '1.2.3', 2]), pick(['=', '!=', '<', '<=', '>', '>=', '^', '~', '==']), pick(VERSIONS)] };
    case 5: return { '!': pick([[cond(d - 1)], cond(d - 1), { missing: ['email'] }]) };
    case 6: return { '!!': [value(d - 1)] };
    case 7: return { [pick(['and', 'or'])]: Array.from({ length: 1 + int(3) }, () => cond(d - 1)) };
    case 8: return { [pick(['all', 'some', 'none'])]: [arrArg(d - 1), pick([{ '==': [{ var: '' }, 'beta'] }, { '>': [{ var: '' }, 1] }, { var: '' }])] };
    case 9: return { missing_some: [1 + int(2), ['email', 'age', 'country', 'nested.a.b']] };
    case 10: return { '!': { missing: [pick(VAR_PATHS), pick(VAR_PATHS)] } };
    case 11: return { if: [cond(d - 1), cond(d - 1), cond(d - 1)] };
    case 12: return { '==': [{ '%': [{ var: 'age' }, 2] }, 0] };
    default: return { [pick(CMP)]: [varExpr(), scalar()] };
  }
}

// ---- flags ----
const VARIANT_SETS = {
  boolean: [{ on: true, off: false }, { true: true, false: false }],
  string: [{ red: 'red', blue: 'blue', green: 'green' }, { free: 'Free', pro: 'Pro', enterprise: 'Ent', null: 'n' }, { on: 'ON', off: 'OFF', true: 'T', false: 'F' }],
  number: [{ one: 1, two: 2.5, 1: 10, 0: 0 }, { small: -1, big: 1e21, tiny: 0.1 }],
  object: [{ a: { x: 1 }, b: { y: [1, 2] }, red: { c: 'red' } }, { on: { v: true }, off: {} }],
};
function fractional(names, d) {
  const n = 1 + int(6);
  const buckets = [];
  for (let i = 0; i < n; i++) {
    const v = chance(0.9) ? pick(names) : pick([null, 'nope', true, 1]);
    if (chance(0.15)) buckets.push([v]);
    else buckets.push([v, pick([int(100), int(10), 1, 0, 50, 33, -5, 1000, int(100000), chance(0.02) ? 2.5 : 3, chance(0.01) ? 2147483647 : 7])]);
  }
  const by = chance(0.4) ? [pick([{ var: 'email' }, { cat: [{ var: '$flagd.flagKey' }, { var: 'email' }] }, { var: 'targetingKey' }, 'constant-key', { var: 'age' }])] : [];
  return { fractional: by.concat(buckets) };
}
function variantExpr(names, d) {
  switch (int(10)) {
    case 0: return fractional(names, d);
    case 1: return null;
    case 2: return chance(0.5) ? 'no-such-variant' : value(d);
    case 3: return { var: 'plan' };
    case 4: return { cat: [pick(['r', 'o', 'b']), pick(['ed', 'n', 'lue', 'ff'])] };
    default: return pick(names);
  }
}
function targeting(names, evaluators) {
  const d = 1 + int(3);
  switch (int(10)) {
    case 0: return fractional(names, d);
    case 1: return cond(d); // true/false -> variants "true"/"false"
    case 2: return {};
    case 3: return { var: pick(['plan', 'country', 'misc', 'missing']) };
    case 4: if (evaluators.length) return { if: [{ $ref: pick(evaluators) }, pick(names), variantExpr(names, d)] };
    // fall through
    default: {
      const n = 1 + int(3);
      const a = [];
      for (let i = 0; i < n; i++) a.push(cond(d), variantExpr(names, d));
      if (chance(0.7)) a.push(variantExpr(names, d));
      return { if: a };
    }
  }
}
function flagDef(evaluators) {
  const type = pick(['boolean', 'boolean', 'string', 'string', 'number', 'object']);
  const variants = pick(VARIANT_SETS[type]);
  const names = Object.keys(variants);
  const def = { state: chance(0.92) ? 'ENABLED' : 'DISABLED', variants };
  const dv = int(10);
  if (dv < 7) def.defaultVariant = pick(names);
  else if (dv === 7) def.defaultVariant = null;
  else if (dv === 8) def.defaultVariant = '';
  if (chance(0.85)) def.targeting = targeting(names, evaluators);
  if (chance(0.2)) def.metadata = { team: 'web', version: 3 };
  return { def, type };
}
function flagFile() {
  const file = { flags: {} };
  const evaluators = [];
  if (chance(0.3)) {
    file.$evaluators = {};
    for (let i = 0; i < 1 + int(3); i++) {
      const name = 'rule' + i;
      file.$evaluators[name] = cond(2);
      evaluators.push(name);
    }
    // an evaluator may use one listed after it (flagd-core expands $refs
    // in the order the evaluators are listed)
    for (let i = 0; i + 1 < evaluators.length; i++) {
      if (chance(0.4)) file.$evaluators[evaluators[i]] = { [pick(['and', 'or'])]: [file.$evaluators[evaluators[i]], { $ref: evaluators[i + 1] }] };
    }
  }
  const types = {};
  const nflags = 1 + int(5);
  for (let i = 0; i < nflags; i++) {
    const key = pick(['new-ui', 'checkout', 'banner-color', 'rollout', 'limits', 'theme', 'exp']) + '-' + i;
    const { def, type } = flagDef(evaluators);
    file.flags[key] = def;
    types[key] = type;
  }
  if (chance(0.02)) file.flags[Object.keys(file.flags)[0]].state = 'ON'; // refused by both
  if (chance(0.02)) file.flags[Object.keys(file.flags)[0]].defaultVariant = 'absent'; // refused by both
  return { file, types };
}

// ---- run ----
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const SENTINEL = { default: true };
const sets = [];
let total = 0;
while (total < CASES) {
  const { file, types } = flagFile();
  const keys = Object.keys(file.flags);
  const evals = [];
  const n = 8 + int(8);
  for (let i = 0; i < n; i++) {
    let flag = pick(keys);
    if (chance(0.03)) flag = 'not-a-flag';
    let type = types[flag] || 'boolean';
    if (chance(0.08)) type = pick(['boolean', 'string', 'number', 'object']);
    evals.push({ flag, type, context: context() });
  }
  sets.push({ set: sets.length, config: JSON.stringify(file), timestamp: 1700000000 + int(100000000), evals });
  total += n;
}

function canon(v) {
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  if (v && typeof v === 'object') return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}';
  return JSON.stringify(v);
}

const expected = [];
const realNow = Date.now;
for (const s of sets) {
  const core = new FlagdCore(undefined, silent);
  let loadError = null;
  try {
    core.setConfigurations(s.config);
  } catch (e) {
    loadError = e.message || String(e);
  }
  Date.now = () => s.timestamp * 1000;
  for (const e of s.evals) {
    if (loadError) {
      expected.push({ loadError: true });
      continue;
    }
    const r = core.resolve(e.type, e.flag, SENTINEL, e.context, silent);
    expected.push({
      value: r.value === SENTINEL ? null : r.value,
      variant: r.value === SENTINEL ? null : r.variant ?? null,
      reason: r.reason,
      errorCode: r.errorCode ?? null,
    });
  }
  Date.now = realNow;
}

const input = sets.map((s) => JSON.stringify(s)).join('\n') + '\n';
if (args.dump) fs.writeFileSync(args.dump, input);
const run = spawnSync(args.driver, [], { input, maxBuffer: 1 << 30 });
if (run.status !== 0) {
  console.error('driver failed:', run.status, run.stderr.toString());
  process.exit(1);
}
const lines = run.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
if (lines.length !== expected.length) {
  console.error(`driver returned ${lines.length} results for ${expected.length} cases`);
  process.exit(1);
}

let idx = 0, mismatches = 0;
const counts = {};
for (const s of sets) {
  for (const e of s.evals) {
    const exp = expected[idx], got = lines[idx];
    idx++;
    let same;
    if (exp.loadError || got.loadError) {
      same = Boolean(exp.loadError) === Boolean(got.loadError);
    } else {
      same = canon(exp.value) === canon(got.value) && exp.variant === got.variant && exp.reason === got.reason && exp.errorCode === got.errorCode;
    }
    const label = exp.loadError ? 'LOAD_ERROR' : exp.reason + (exp.errorCode ? '/' + exp.errorCode : '');
    counts[label] = (counts[label] || 0) + 1;
    if (!same) {
      mismatches++;
      if (mismatches <= 20) {
        console.log(`MISMATCH set ${s.set} flag ${e.flag} type ${e.type}`);
        console.log('  definition: ' + JSON.stringify(JSON.parse(s.config).flags[e.flag] ?? null));
        if (JSON.parse(s.config).$evaluators) console.log('  $evaluators: ' + JSON.stringify(JSON.parse(s.config).$evaluators));
        console.log('  context:    ' + JSON.stringify(e.context) + ' timestamp ' + s.timestamp);
        console.log('  flagd-core: ' + canon(exp));
        console.log('  keel:       ' + canon(got));
      }
    }
  }
}
console.log(`cases: ${expected.length} in ${sets.length} flag files (seed ${SEED})`);
console.log('outcomes: ' + Object.entries(counts).sort().map(([k, v]) => `${k}=${v}`).join(' '));
console.log(`mismatches: ${mismatches}`);
process.exit(mismatches ? 1 : 0);
