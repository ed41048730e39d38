/** The operator's name for recommender/canonical.ts (pure, so Apply's decisions use it too). */
export { canonicalJson } from '../recommender/canonical.ts';
