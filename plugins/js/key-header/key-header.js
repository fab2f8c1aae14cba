// key-header: a compaction key extractor written in JavaScript.
//
// The key of a record is the value of a configurable header, for producers
// that put an entity id in a header rather than in the record key.
//
// Params:
//   header    (required) header name, matched exactly; the last occurrence wins
//   fallback  `none` (default): records without the header have no key and
//             are kept; `record-key`: use the record key instead
//
// Built by ../build.sh with componentize-js (world compaction-plugin, every
// WASI feature disabled, so the component imports nothing but the host log).
import { log } from 'distlog:plugin/host@0.1.0';
import { parseParams, keyOf } from './policy.js';

let config = null;

// A thrown string becomes the call's `err`; other values trap, so every
// failure is turned into its message here.
function failWith(error) {
  throw error instanceof Error ? error.message : String(error);
}

export const compaction = {
  init(params) {
    try {
      config = parseParams(params);
    } catch (error) {
      failWith(error);
    }
    log('debug', `key-header ready: header=${config.header} fallback=${config.fallback}`);
  },

  extractKeys(records) {
    if (config === null) {
      failWith('init was not called: parameter `header` is required');
    }
    try {
      return records.map((record) => keyOf(config, record));
    } catch (error) {
      failWith(error);
    }
  },
};
