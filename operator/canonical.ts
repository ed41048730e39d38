import { createHash } from 'node:crypto';
import { canonicalJson } from '../recommender/canonical.ts';

/** The operator's name for recommender/canonical.ts (pure, so Apply's decisions use it too). */
export { canonicalJson };

/**
 * A short digest of a value's canonical JSON: what is kept, instead of the value, to tell
 * whether it changed.
 */
export function canonicalDigest(value: unknown): string {
  return createHash('sha1').update(canonicalJson(value)).digest('base64');
}
