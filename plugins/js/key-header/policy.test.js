import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseParams, keyOf } from './policy.js';

const bytes = (s) => new TextEncoder().encode(s);
const record = (key, headers, value = bytes('v')) => ({
  key: key === undefined ? undefined : bytes(key),
  value,
  headers: headers.map(([k, v]) => ({ key: k, value: bytes(v) })),
  timestamp: 0n,
});

test('the last matching header is the key', () => {
  const config = parseParams([['header', 'entity']]);
  assert.deepEqual(keyOf(config, record('k', [['entity', 'a'], ['other', 'x'], ['entity', 'b']])), bytes('b'));
  assert.equal(keyOf(config, record('k', [['Entity', 'a']])), undefined);
  assert.equal(keyOf(config, record(undefined, [])), undefined);
});

test('fallback to the record key', () => {
  const config = parseParams([['header', 'entity'], ['fallback', 'record-key']]);
  assert.deepEqual(keyOf(config, record('k', [])), bytes('k'));
  assert.equal(keyOf(config, record(undefined, [])), undefined);
  assert.deepEqual(keyOf(config, record('k', [['entity', 'e']], undefined)), bytes('e'));
});

test('params are validated', () => {
  assert.throws(() => parseParams([]), /missing parameter `header`/);
  assert.throws(() => parseParams([['header', '']]), /missing parameter/);
  assert.throws(() => parseParams([['headr', 'x']]), /unknown parameter `headr`/);
  assert.throws(() => parseParams([['header', 'a'], ['header', 'b']]), /twice/);
  assert.throws(() => parseParams([['header', 'a'], ['fallback', 'key']]), /fallback/);
});
