// A starter retention policy in JavaScript: delete the oldest closed
// segments whose newest record is older than `max.age.ms` (required param).
//
// Rules of wit/plugin.wit: never name the active segment; a thrown string
// becomes the call's `err` (throw strings, not Error objects: anything else
// traps the instance). u64/s64 values are BigInts.
import { log } from 'distlog:plugin/host@0.1.0';

let maxAgeMs = null;

export const retention = {
  init(params) {
    for (const [key, value] of params) {
      if (key !== 'max.age.ms') {
        throw `unknown parameter \`${key}\` (accepted: max.age.ms)`;
      }
      if (!/^[0-9]+$/.test(value)) {
        throw `\`max.age.ms\` = ${JSON.stringify(value)}: expected a non-negative integer`;
      }
      maxAgeMs = BigInt(value);
    }
    if (maxAgeMs === null) {
      throw 'missing parameter `max.age.ms`';
    }
    log('info', `my-retention ready: max.age.ms=${maxAgeMs}`);
  },

  selectDeletions(partition, segments, nowMs) {
    if (maxAgeMs === null) {
      throw 'init did not succeed: parameter `max.age.ms` is required';
    }
    const cutoff = nowMs - maxAgeMs;
    const deletions = [];
    for (const segment of segments) {
      if (segment.active || segment.maxTimestamp >= cutoff) {
        break; // only a prefix of the log may go
      }
      deletions.push({
        baseOffset: segment.baseOffset,
        reason: `newest record older than max.age.ms=${maxAgeMs}`,
      });
    }
    return deletions;
  },
};
