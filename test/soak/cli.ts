/**
 * `npm run soak [-- --minutes 30] [--rate 20] [--no-chaos] [--seed N] [--kopek-node-options FLAGS]
 * [--memory-limit Q|chart|none] [--typescript] [--json FILE]`: the long soak and chaos run on a local cluster (not part of npm test; a 2-minute
 * chaos run is, in test/integration/chaos.test.ts). Prints the figures; exits 1 when the recommendations do not
 * converge to what a fresh kopek computes.
 */
import { rm, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { compileKopekCli } from '../image/compile.ts';
import { parseMemoryLimitOption, type MemoryLimitOption } from '../bench/scale/memory-limit.ts';
import { chartDefaults } from '../support/chart-values.ts';
import { HELP_OPTION, scriptArgs, usageError } from '../support/script-args.ts';
import { formatReport } from './report.ts';
import { runSoak } from './soak.ts';

const USAGE =
  'usage: npm run soak -- [--minutes 30] [--rate 20] [--no-chaos] [--seed N]\n' +
  '                       [--kopek-node-options FLAGS] [--memory-limit Q|chart|none]\n' +
  '                       [--typescript] [--json FILE]\n' +
  "  --kopek-node-options  Node flags for kopek (default: the chart's nodeOptions, as shipped)\n" +
  '  --memory-limit        Q|chart|none: each replica in a memory cgroup with this limit (e.g. 512Mi),\n' +
  "                        as its pod; default chart: the chart's limit (none where no cgroup can be made)\n" +
  '  --typescript          run kopek from its TypeScript sources (default: compiled, as the image runs it)\n';
const { values } = scriptArgs(USAGE, () =>
  parseArgs({
    options: {
      minutes: { type: 'string', default: '30' },
      rate: { type: 'string', default: '20' },
      'no-chaos': { type: 'boolean', default: false },
      seed: { type: 'string', default: '16' },
      'kopek-node-options': { type: 'string' },
      'memory-limit': { type: 'string', default: 'chart' },
      typescript: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: HELP_OPTION,
    },
  }),
);
const minutes = Number(values.minutes);
const rate = Number(values.rate);
const seed = Number(values.seed);
if (!(minutes > 0) || !(rate > 0) || !Number.isInteger(seed))
  usageError('--minutes and --rate must be positive numbers, --seed an integer', USAGE);
// By default kopek runs as the chart and the image run it: compiled, with the chart's Node flags.
const nodeOptions = values['kopek-node-options'];
let memoryLimit: MemoryLimitOption;
try {
  memoryLimit = parseMemoryLimitOption(values['memory-limit']);
} catch (error) {
  usageError(`--memory-limit: ${error instanceof Error ? error.message : String(error)}`, USAGE);
}
const compiled = values.typescript ? undefined : await compileKopekCli();
const report = await runSoak({
  minutes,
  changesPerSecond: rate,
  chaos: !values['no-chaos'],
  seed,
  kopekNodeFlags:
    nodeOptions === undefined
      ? chartDefaults().nodeFlags
      : nodeOptions.split(/\s+/).filter((flag) => flag !== ''),
  kopekEnv: chartDefaults().mallocEnv,
  ...(compiled ? { kopekCli: compiled.cli } : {}),
  memoryLimit,
  log: (line) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`),
}).finally(() => (compiled ? rm(compiled.dir, { recursive: true, force: true }) : undefined));
if (values.json !== undefined) await writeFile(values.json, JSON.stringify(report, null, 2));
process.stdout.write(`${formatReport(report)}\n`);
process.exit(report.convergence.equal ? 0 : 1);
