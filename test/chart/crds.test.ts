import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SOURCE = fileURLToPath(new URL('../../crds/', import.meta.url));
const CHART = fileURLToPath(new URL('../../charts/kopek/crds/', import.meta.url));

const yamlFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.yaml'))
    .map((entry) => entry.name)
    .sort();

describe("the chart's CRDs", () => {
  it('are exactly the CRDs of crds/ (same files; examples are not copied)', () => {
    expect(yamlFiles(SOURCE).length).toBeGreaterThan(0);
    expect(readdirSync(CHART).sort()).toEqual(yamlFiles(SOURCE));
  });

  it.each(yamlFiles(SOURCE))('%s is a byte-for-byte copy', (file) => {
    const source = readFileSync(join(SOURCE, file));
    const copy = readFileSync(join(CHART, file));
    expect(
      copy.equals(source),
      `charts/kopek/crds/${file} differs from crds/${file}; copy it again: cp crds/*.yaml charts/kopek/crds/`,
    ).toBe(true);
  });
});
