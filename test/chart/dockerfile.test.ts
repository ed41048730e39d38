import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { APP_EXCLUDED, APP_PATHS, COMPILE_CONFIG, RUNTIME, nodeVersion } from '../image/spec.ts';

// The Dockerfile is for people with Docker; the tests build and run the image without a
// container engine (`npm run image`, test/image/, which test/integration/image.test.ts runs).
// These static checks catch what would break a Docker build — a COPY of something missing, a
// runtime import outside the copied folders or of a devDependency (the image installs with
// --omit=dev), a root user — or bloat it: a production dependency nothing loads. And they hold
// the Dockerfile to the description both builds share (test/image/spec.ts), so that the two
// describe the same image.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const layerScript = readFileSync(join(ROOT, 'test/image/layer.sh'), 'utf8');
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Stage {
  from: string;
  name?: string;
  instructions: { op: string; args: string }[];
}

function stages(text: string): Stage[] {
  const result: Stage[] = [];
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const line of lines) {
    const match = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!match?.[1] || match[2] === undefined) continue;
    const [, op, args] = match;
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args);
      result.push({
        from: from?.[1] ?? args,
        ...(from?.[2] ? { name: from[2] } : {}),
        instructions: [],
      });
    } else {
      result.at(-1)?.instructions.push({ op, args });
    }
  }
  return result;
}

const all = stages(dockerfile);
/** The stage that installs the production dependencies, and the one that compiles kopek. */
const deps = all.find((stage) => stage.name === 'deps');
const compile = all.find((stage) => stage.name === 'compile');
const runtime = all.at(-1);
/** Paths the build stages copy from the build context. */
const contextCopies = all
  .slice(0, -1)
  .flatMap((stage) => stage.instructions)
  .filter((instruction) => instruction.op === 'COPY' && !instruction.args.startsWith('--from'))
  .flatMap((instruction) => instruction.args.split(/\s+/).slice(0, -1));

/** Every file the operator loads at run time, following relative imports from its entry points. */
function runtimeGraph(entries: string[]): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const builtins = new Set(builtinModules);
  const pending = entries.map((entry) => join(ROOT, entry));
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    if (!file.endsWith('.ts')) continue;
    // Type-only imports are erased by type stripping: they load nothing.
    const source = readFileSync(file, 'utf8').replace(/^\s*(import|export)\s+type\s[^;]*;/gm, '');
    const specifiers = [
      ...source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm),
      ...source.matchAll(/^\s*import\s+'([^']+)'/gm),
      ...source.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
    ].map((match) => match[1] ?? '');
    for (const specifier of specifiers) {
      if (specifier.startsWith('.')) pending.push(resolve(dirname(file), specifier));
      else if (!specifier.startsWith('node:') && !builtins.has(specifier)) {
        const parts = specifier.split('/');
        packages.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? ''));
      }
    }
  }
  return { files, packages };
}

describe('the Dockerfile', () => {
  it('installs and compiles in node:24 stages and runs on distroless Node 24 as a non-root user', () => {
    expect(all.length).toBeGreaterThanOrEqual(3);
    expect(deps?.from).toMatch(/^node:24(\.|-|$)/);
    expect(compile?.from).toMatch(/^node:24(\.|-|$)/);
    expect(
      deps?.instructions.some((i) => i.op === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args)),
    ).toBe(true);
    // The same tsc project as `npm run image`, into the /app the runtime stage copies.
    expect(
      compile?.instructions.some(
        (i) => i.op === 'RUN' && i.args.includes(`tsc -p ${COMPILE_CONFIG} --outDir /app`),
      ),
    ).toBe(true);
    expect(runtime?.from).toMatch(/^gcr\.io\/distroless\/nodejs24-debian\d+(:|@|$)/);
    // Distroless has no shell: a RUN in the final stage could not work.
    expect(runtime?.instructions.filter((i) => i.op === 'RUN')).toEqual([]);
    const user = runtime?.instructions.filter((i) => i.op === 'USER').at(-1)?.args;
    expect(user, 'numeric, so that runAsNonRoot can check it').toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
    const entrypoint = runtime?.instructions.find((i) => i.op === 'ENTRYPOINT')?.args;
    expect(JSON.parse(entrypoint ?? '[]')).toEqual([
      '/nodejs/bin/node',
      '/app/operator/cli/kopek.js',
    ]);
    expect(JSON.parse(runtime?.instructions.find((i) => i.op === 'CMD')?.args ?? '[]')).toEqual([
      'run',
    ]);
  });

  it('uses the same Node major version as package.json', () => {
    expect(pkg.devDependencies.node).toMatch(/^\^?24\./);
  });

  it('copies only paths that exist and that .dockerignore lets through', () => {
    expect(contextCopies.length).toBeGreaterThan(0);
    const allowed = dockerignore
      .split('\n')
      .filter((line) => line.startsWith('!'))
      .map((line) => line.slice(1).replace(/\/$/, ''));
    for (const source of contextCopies) {
      const path = source.replace(/\/$/, '').replace(/^\.\//, '');
      expect(existsSync(join(ROOT, path)), `COPY ${source}: no such path`).toBe(true);
      expect(allowed, `COPY ${source}: excluded by .dockerignore`).toContain(path);
    }
  });

  it('carries everything `kopek run` loads, and only production dependencies', () => {
    const { files, packages } = runtimeGraph(['operator/cli/kopek.ts', 'operator/run.ts']);
    const copied = contextCopies.map((source) => source.replace(/\/$/, ''));
    for (const file of files) {
      const path = relative(ROOT, file);
      expect(existsSync(file), `${path} is imported but missing`).toBe(true);
      expect(
        copied.some((source) => path === source || path.startsWith(`${source}/`)),
        `${path} is loaded at run time but not copied into the image`,
      ).toBe(true);
      expect(path.endsWith('.test.ts'), `${path} is a test but loaded at run time`).toBe(false);
    }
    for (const name of packages) {
      expect(
        Object.keys(pkg.dependencies),
        `${name} is imported at run time but is not a production dependency`,
      ).toContain(name);
    }
    expect(packages.size).toBeGreaterThan(0);
  });

  it('ships no production dependency that kopek does not load (a test-only one is a devDependency)', () => {
    const { packages } = runtimeGraph(['operator/cli/kopek.ts', 'operator/run.ts']);
    for (const name of Object.keys(pkg.dependencies)) {
      expect(
        packages.has(name),
        `${name} is a production dependency, so the image installs it, but kopek never imports it`,
      ).toBe(true);
    }
  });

  it('describes the image `npm run image` builds: same base, Node, files, entrypoint, user, environment and port', () => {
    // distroless's nodejs24-debian12 is Node 24 on Debian 12 (bookworm), as the daemonless build.
    expect(runtime?.from).toMatch(/nodejs24-debian12/);
    expect(nodeVersion()).toMatch(/^24\./);
    expect(layerScript).toMatch(/^debian_suite=bookworm$/m);

    const last = (op: string): string | undefined =>
      runtime?.instructions.filter((i) => i.op === op).at(-1)?.args;
    expect(JSON.parse(last('ENTRYPOINT') ?? '[]')).toEqual(RUNTIME.Entrypoint);
    expect(JSON.parse(last('CMD') ?? '[]')).toEqual(RUNTIME.Cmd);
    expect(last('USER')).toBe(RUNTIME.User);
    expect(last('WORKDIR')).toBe(RUNTIME.WorkingDir);
    for (const env of runtime?.instructions.filter((i) => i.op === 'ENV') ?? []) {
      expect(RUNTIME.Env).toContain(env.args.replace(/\s+/, '='));
    }
    expect(
      runtime?.instructions.filter((i) => i.op === 'EXPOSE').map((i) => `${i.args}/tcp`),
    ).toEqual(Object.keys(RUNTIME.ExposedPorts));

    // The runtime stage's /app holds what the daemonless build's app and dependency layers hold.
    const appCopies = (runtime?.instructions ?? [])
      .filter((i) => i.op === 'COPY')
      .map((i) =>
        i.args
          .split(/\s+/)
          .at(-1)
          ?.replace(/^\/app\//, ''),
      )
      .sort();
    expect(appCopies).toEqual([...APP_PATHS, 'node_modules'].sort());
    const excluded = dockerignore
      .split('\n')
      .filter(
        (line) => line !== '' && !line.startsWith('#') && !line.startsWith('!') && line !== '*',
      )
      .map((line) => line.replace(/^\*\*\//, '').replace(/\/$/, ''))
      .sort();
    expect(excluded).toEqual([...APP_EXCLUDED].sort());

    // The same `npm ci` in both.
    const npmCi = (text: string): string[] =>
      (/npm ci((?: --[a-z-]+(?:=\S+)?)+)/.exec(text)?.[1] ?? '').trim().split(' ');
    const dockerFlags = npmCi(
      deps?.instructions.find((i) => i.op === 'RUN' && i.args.includes('npm ci'))?.args ?? '',
    );
    expect(dockerFlags).toContain('--omit=dev');
    const layerCommand = layerScript.split('\n').find((line) => line.includes('&& npm ci')) ?? '';
    expect(npmCi(layerCommand).filter((flag) => flag !== '--silent')).toEqual(dockerFlags);
  });
});
