/**
 * `npm run fuzz [-- --runs N] [--seed S]`: the long fuzz run (100,000 cases by default) of
 * factsFromObjects and recommend over arbitrary Kubernetes-shaped JSON. Without --seed it picks
 * one and prints it; a failure prints fast-check's report, whose seed and path replay it.
 */
import { parseArgs } from 'node:util';
import { HELP_OPTION, scriptArgs, usageError } from '../support/script-args.ts';
import { fuzz } from './check.ts';

const USAGE = 'usage: npm run fuzz -- [--runs N] [--seed S]\n';
const { values } = scriptArgs(USAGE, () =>
  parseArgs({
    options: {
      runs: { type: 'string', default: '100000' },
      seed: { type: 'string' },
      help: HELP_OPTION,
    },
  }),
);
const runs = Number(values.runs);
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed))
  usageError('--runs must be a positive integer, --seed an integer', USAGE);
process.stdout.write(`fuzzing ${runs} cases with seed ${seed}\n`);
const started = Date.now();
try {
  const covered = fuzz(runs, seed);
  process.stdout.write(
    `${covered.cases} cases, 0 exceptions, 0 schema violations in ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
      `${covered.withRecommendations} dumps gave ${covered.recommendations} recommendations; ` +
      `verdicts seen: ${[...covered.verdicts].sort().join(', ')}\n`,
  );
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
