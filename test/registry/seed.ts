/**
 * Seeds a registry through its HTTP API, as `docker push` would: blobs by monolithic upload
 * (POST, then PUT with the digest), manifests by PUT with their media type. Builds the kinds of
 * image kopek must read: OCI indexes, Docker manifest lists, single-arch manifests of either
 * format, and an index carrying BuildKit attestations.
 */
import { createHash } from 'node:crypto';
import { inParallel } from '../support/parallel.ts';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const IN_TOTO = 'application/vnd.in-toto+json';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Where to push, and the Authorization header value to push a repository with. */
export interface SeedTarget {
  url: string;
  authorize?: (repository: string) => string;
}

/** An image as seeded: what a client should find. */
export interface SeededImage {
  /** host:port/repository:tag */
  image: string;
  digest: string;
  platforms: string[];
}

const sha256 = (data: Buffer): string =>
  `sha256:${createHash('sha256').update(data).digest('hex')}`;

function headers(
  target: SeedTarget,
  repository: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  const auth = target.authorize?.(repository);
  return auth === undefined ? extra : { ...extra, Authorization: auth };
}

async function expectStatus(response: Response, status: number, what: string): Promise<void> {
  const body = await response.text();
  if (response.status !== status)
    throw new Error(
      `${what}: expected HTTP ${status}, got ${response.status}: ${body.slice(0, 500)}`,
    );
}

/** Uploads a blob (POST to start, PUT with the digest to finish). */
export async function pushBlob(
  target: SeedTarget,
  repository: string,
  content: Buffer,
  mediaType: string,
): Promise<Descriptor> {
  const digest = sha256(content);
  const start = await fetch(`${target.url}/v2/${repository}/blobs/uploads/`, {
    method: 'POST',
    headers: headers(target, repository),
  });
  const location = start.headers.get('location');
  await expectStatus(start, 202, `starting a blob upload to ${repository}`);
  if (location === null) throw new Error(`the registry sent no upload location for ${repository}`);
  const upload = new URL(location, target.url);
  upload.searchParams.set('digest', digest);
  const finish = await fetch(upload, {
    method: 'PUT',
    headers: headers(target, repository, { 'Content-Type': 'application/octet-stream' }),
    body: content,
  });
  await expectStatus(finish, 201, `uploading blob ${digest} to ${repository}`);
  return { mediaType, digest, size: content.length };
}

/** PUTs a manifest under a tag (or its digest) and returns its descriptor. */
export async function pushManifest(
  target: SeedTarget,
  repository: string,
  reference: string | undefined,
  manifest: Record<string, unknown>,
): Promise<Descriptor> {
  const body = Buffer.from(JSON.stringify(manifest));
  const mediaType = String(manifest.mediaType);
  const digest = sha256(body);
  const response = await fetch(`${target.url}/v2/${repository}/manifests/${reference ?? digest}`, {
    method: 'PUT',
    headers: headers(target, repository, { 'Content-Type': mediaType }),
    body,
  });
  await expectStatus(response, 201, `pushing manifest ${repository}:${reference ?? digest}`);
  return { mediaType, digest, size: body.length };
}

/** A single-platform image: config blob, one layer, and an OCI or Docker v2 manifest. */
export async function pushImage(
  target: SeedTarget,
  repository: string,
  tag: string | undefined,
  platform: Platform,
  format: 'oci' | 'docker',
): Promise<Descriptor> {
  const layer = await pushBlob(
    target,
    repository,
    Buffer.from(`layer of ${repository} for ${JSON.stringify(platform)}`),
    format === 'oci' ? OCI_LAYER : DOCKER_LAYER,
  );
  const config = await pushBlob(
    target,
    repository,
    Buffer.from(
      JSON.stringify({
        ...platform,
        created: '2026-01-01T00:00:00Z',
        config: { Cmd: ['/app'] },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
    format === 'oci' ? OCI_CONFIG : DOCKER_CONFIG,
  );
  return pushManifest(target, repository, tag, {
    schemaVersion: 2,
    mediaType: format === 'oci' ? OCI_MANIFEST : DOCKER_MANIFEST,
    config,
    layers: [layer],
  });
}

/** A BuildKit-style attestation manifest for `subject`: unknown/unknown, in-toto layer. */
async function pushAttestation(
  target: SeedTarget,
  repository: string,
  subject: Descriptor,
): Promise<Descriptor> {
  const statement = await pushBlob(
    target,
    repository,
    Buffer.from(
      JSON.stringify({
        _type: 'https://in-toto.io/Statement/v0.1',
        subject: [{ digest: subject.digest }],
      }),
    ),
    IN_TOTO,
  );
  const config = await pushBlob(
    target,
    repository,
    Buffer.from(
      JSON.stringify({
        architecture: 'unknown',
        os: 'unknown',
        config: {},
        rootfs: { type: 'layers', diff_ids: [] },
      }),
    ),
    OCI_CONFIG,
  );
  return pushManifest(target, repository, undefined, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config,
    layers: [
      {
        ...statement,
        annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' },
      },
    ],
  });
}

/** A multi-platform image: one manifest per platform, then an OCI index or Docker manifest list. */
export async function pushIndex(
  target: SeedTarget,
  repository: string,
  tag: string,
  platforms: readonly Platform[],
  format: 'oci' | 'docker',
  withAttestations = false,
): Promise<Descriptor> {
  const manifests: Record<string, unknown>[] = [];
  for (const platform of platforms) {
    const image = await pushImage(target, repository, undefined, platform, format);
    manifests.push({ ...image, platform });
    if (withAttestations) {
      const attestation = await pushAttestation(target, repository, image);
      manifests.push({
        ...attestation,
        platform: { os: 'unknown', architecture: 'unknown' },
        annotations: {
          'vnd.docker.reference.type': 'attestation-manifest',
          'vnd.docker.reference.digest': image.digest,
        },
      });
    }
  }
  return pushManifest(target, repository, tag, {
    schemaVersion: 2,
    mediaType: format === 'oci' ? OCI_INDEX : DOCKER_LIST,
    manifests,
  });
}

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const ARMV7: Platform = { os: 'linux', architecture: 'arm', variant: 'v7' };

/** The catalog every registry in the tests holds, under `prefix/`. */
export interface Catalog {
  /** OCI index: linux/amd64 + linux/arm64/v8. */
  multiArch: SeededImage;
  /** Single OCI manifest, linux/amd64. */
  amd64Only: SeededImage;
  /** Single Docker v2 manifest, linux/arm64/v8. */
  arm64Only: SeededImage;
  /** Docker manifest list: linux/amd64, linux/arm/v7, linux/arm64/v8. */
  dockerList: SeededImage;
  /** OCI index with an attestation manifest per platform. */
  attested: SeededImage;
}

export function catalogImages(catalog: Catalog): SeededImage[] {
  const { multiArch, amd64Only, arm64Only, dockerList, attested } = catalog;
  return [multiArch, amd64Only, arm64Only, dockerList, attested];
}

/** Pushes the catalog to a registry (`host` is how image references name it). */
export async function seedCatalog(
  target: SeedTarget,
  host: string,
  prefix: string,
): Promise<Catalog> {
  const seeded = (
    repository: string,
    tag: string,
    d: Descriptor,
    platforms: string[],
  ): SeededImage => ({
    image: `${host}/${repository}:${tag}`,
    digest: d.digest,
    platforms,
  });
  const multi = `${prefix}/multi-arch`;
  const amd = `${prefix}/amd64-only`;
  const arm = `${prefix}/arm64-only`;
  const list = `${prefix}/docker-list`;
  const attested = `${prefix}/attested`;
  return {
    multiArch: seeded(multi, '1.0', await pushIndex(target, multi, '1.0', [AMD64, ARM64], 'oci'), [
      'linux/amd64',
      'linux/arm64/v8',
    ]),
    amd64Only: seeded(amd, '1.0', await pushImage(target, amd, '1.0', AMD64, 'oci'), [
      'linux/amd64',
    ]),
    arm64Only: seeded(arm, '1.0', await pushImage(target, arm, '1.0', ARM64, 'docker'), [
      'linux/arm64/v8',
    ]),
    dockerList: seeded(
      list,
      '1.0',
      await pushIndex(target, list, '1.0', [AMD64, ARMV7, ARM64], 'docker'),
      ['linux/amd64', 'linux/arm/v7', 'linux/arm64/v8'],
    ),
    attested: seeded(
      attested,
      '1.0',
      await pushIndex(target, attested, '1.0', [AMD64, ARM64], 'oci', true),
      ['linux/amd64', 'linux/arm64/v8'],
    ),
  };
}

/**
 * `count` small images `prefix/app-<i>:v1`, alternately multi-arch and amd64-only, pushed
 * `concurrency` at a time.
 */
export async function seedFleet(
  target: SeedTarget,
  host: string,
  prefix: string,
  count: number,
  concurrency = 1,
): Promise<SeededImage[]> {
  const images: SeededImage[] = [];
  await inParallel(
    Array.from({ length: count }, (_, i) => i),
    concurrency,
    async (i) => {
      const repository = `${prefix}/app-${i}`;
      const multi = i % 2 === 0;
      const d = multi
        ? await pushIndex(target, repository, 'v1', [AMD64, ARM64], 'oci')
        : await pushImage(target, repository, 'v1', AMD64, 'oci');
      images[i] = {
        image: `${host}/${repository}:v1`,
        digest: d.digest,
        platforms: multi ? ['linux/amd64', 'linux/arm64/v8'] : ['linux/amd64'],
      };
    },
  );
  return images;
}
