/**
 * The arguments of a test script (`npm run soak`, `fuzz`, `bench:dump`): `parse` calls
 * util.parseArgs with HELP_OPTION among its options (so its result keeps its precise type);
 * `--help` prints `usage` and exits 0, an unknown or malformed flag prints the error and `usage`
 * and exits 2.
 */
export function scriptArgs<T extends { values: { help?: boolean | undefined } }>(
  usage: string,
  parse: () => T,
): T {
  let parsed: T;
  try {
    parsed = parse();
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error), usage);
  }
  if (parsed.values.help === true) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return parsed;
}

export const HELP_OPTION = { type: 'boolean', short: 'h', default: false } as const;

/** Prints `message` and `usage` and exits 2. */
export function usageError(message: string, usage: string): never {
  process.stderr.write(`${message}\n${usage}`);
  process.exit(2);
}
