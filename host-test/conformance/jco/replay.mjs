// Replays the conformance suite's export calls, recorded on wasmtime by callrecords-conformance's
// `jco::record_scenarios`, on the jco-transpiled plugin component, and reports per scenario
// whether every answer is identical.
//
//   node replay.mjs <transpiled>/plugin.js <dump.json>
//
// Prints {"scenarios": [{"name", "equal", "calls", "diff"?}]} on stdout. Values use the dump's
// encoding: {"$bytes": base64} for list<u8>, {"$bigint": "digits"} for u64, null for none.

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [modulePath, dumpPath] = process.argv.slice(2);
if (!modulePath || !dumpPath) {
  console.error('usage: node replay.mjs <transpiled>/plugin.js <dump.json>');
  process.exit(2);
}
const plugin = await import(pathToFileURL(modulePath).href);
const dump = JSON.parse(readFileSync(dumpPath, 'utf8'));

const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

// Dump encoding -> the JavaScript values jco expects.
function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v !== null && typeof v === 'object') {
    if ('$bytes' in v) return new Uint8Array(Buffer.from(v.$bytes, 'base64'));
    if ('$bigint' in v) return BigInt(v.$bigint);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decode(x)]));
  }
  return v;
}

// jco's JavaScript values -> the dump encoding.
function encode(v) {
  if (v === undefined || v === null) return null;
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('base64') };
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (Array.isArray(v)) return v.map(encode);
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  return v;
}

// JSON with sorted keys, so key order never counts as a difference.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function exportsOf(name) {
  return plugin[camel(name)] ?? plugin[`teams-sentinel:callrecords/${name}@0.1.0`];
}

function run(call) {
  const f = exportsOf(call.interface)?.[camel(call.function)];
  if (typeof f !== 'function') return { trap: `no export ${call.interface}.${call.function}` };
  try {
    return { returns: encode(f(...call.args.map(decode))) };
  } catch (e) {
    // A WIT `result` error: jco throws a ComponentError carrying {tag, val}.
    if (e !== null && typeof e === 'object' && 'payload' in e) return { throws: encode(e.payload) };
    return { trap: String(e) };
  }
}

const preview = (v) => canonical(v).slice(0, 300);

const scenarios = dump.scenarios.map((s) => {
  for (const [i, call] of s.calls.entries()) {
    const got = run(call);
    // A trap's text is the host's own; that both hosts trapped is what must agree.
    const same = 'trap' in call.result ? 'trap' in got : canonical(got) === canonical(call.result);
    if (!same) {
      const diff = `call ${i} ${call.interface}.${call.function}: wasmtime ${preview(call.result)} jco ${preview(got)}`;
      return { name: s.name, equal: false, calls: s.calls.length, diff };
    }
  }
  return { name: s.name, equal: true, calls: s.calls.length };
});
console.log(JSON.stringify({ scenarios }));
