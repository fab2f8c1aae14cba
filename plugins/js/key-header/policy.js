// Pure logic of the key-header compaction key extractor: no WIT imports, so
// `node --test` exercises it directly (see policy.test.js).

/** Parameters this plugin accepts. */
export const PARAMS = ['header', 'fallback'];

/**
 * Validates init params (a list of [key, value] pairs) and returns the
 * configuration. Throws an Error naming the problem: unknown or repeated
 * keys, a missing or empty `header`, a `fallback` other than `none` or
 * `record-key`.
 */
export function parseParams(params) {
  const seen = new Map();
  for (const [key, value] of params) {
    if (!PARAMS.includes(key)) {
      throw new Error(`unknown parameter \`${key}\` (accepted: ${PARAMS.join(', ')})`);
    }
    if (seen.has(key)) {
      throw new Error(`parameter \`${key}\` given twice`);
    }
    seen.set(key, value);
  }
  const header = seen.get('header');
  if (header === undefined || header === '') {
    throw new Error('missing parameter `header` (the header whose value is the key)');
  }
  const fallback = seen.get('fallback') ?? 'none';
  if (fallback !== 'none' && fallback !== 'record-key') {
    throw new Error(`\`fallback\` = ${JSON.stringify(fallback)}: expected \`none\` or \`record-key\``);
  }
  return { header, fallback };
}

/**
 * The compaction key of one record: the value of the last header named
 * `config.header` (exact, case-sensitive match), else the record key when
 * `fallback` is `record-key`, else undefined (no key: the record is kept).
 * Tombstones follow the same rule.
 */
export function keyOf(config, record) {
  const headers = record.headers ?? [];
  for (let i = headers.length - 1; i >= 0; i--) {
    if (headers[i].key === config.header) {
      return Uint8Array.from(headers[i].value);
    }
  }
  if (config.fallback === 'record-key' && record.key != null) {
    return Uint8Array.from(record.key);
  }
  return undefined;
}
