/**
 * kopek as the image runs it: compiled to JavaScript by the lockfile's tsc with
 * tsconfig.build.json (types erased, imports renamed .ts → .js; docs/decisions/0016). The image
 * build puts it in /app; the benchmarks and the soak run it, so that they measure what users run.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { COMPILE_CONFIG, ROOT } from './spec.ts';

/** /app's files as the image holds them, in `dir`: kopek compiled, package.json and the CRDs. */
export async function compileApp(dir: string): Promise<void> {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    await promisify(execFile)(process.execPath, [
      tsc,
      '-p',
      join(ROOT, COMPILE_CONFIG),
      '--outDir',
      dir,
    ]);
  } catch (error) {
    // tsc prints its diagnostics on stdout.
    const { stdout = '' } = error as { stdout?: string };
    throw new Error(`compiling kopek (tsc -p ${COMPILE_CONFIG}) failed:\n${stdout.trim()}`, {
      cause: error,
    });
  }
  await cp(join(ROOT, 'package.json'), join(dir, 'package.json'));
  await cp(join(ROOT, 'crds'), join(dir, 'crds'), { recursive: true });
}

/**
 * Compiles kopek into a new directory under the repository's .kopek/ (so that its imports find
 * the repository's node_modules) and returns its CLI there, for `node <cli> run`. The caller
 * removes `dir` when done.
 */
export async function compileKopekCli(): Promise<{ cli: string; dir: string }> {
  await mkdir(join(ROOT, '.kopek'), { recursive: true });
  const dir = await mkdtemp(join(ROOT, '.kopek', 'compiled-'));
  await compileApp(dir);
  return { cli: join(dir, 'operator', 'cli', 'kopek.js'), dir };
}
