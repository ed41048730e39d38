/**
 * OCI image documents and their transport: an image layout on disk (what `skopeo copy oci:DIR`
 * and `crane push` read) and the registry API (push, pull). JSON documents are serialized once,
 * compactly; their digest is the sha256 of those bytes.
 */
import { createHash } from 'node:crypto';
import { copyFile, link, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  pushBlob,
  pushManifest,
  type Descriptor,
  type Platform,
  type SeedTarget,
} from '../registry/seed.ts';

export const sha256 = (data: Buffer): string =>
  `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A JSON document with the exact bytes its digest is computed over. */
export interface Document {
  json: Record<string, unknown>;
  bytes: Buffer;
  descriptor: Descriptor;
}

export function document(mediaType: string, json: Record<string, unknown>): Document {
  const bytes = Buffer.from(JSON.stringify(json));
  return { json, bytes, descriptor: { mediaType, digest: sha256(bytes), size: bytes.length } };
}

/** A blob that lives in a file (a layer), by its descriptor. */
export interface FileBlob {
  path: string;
  descriptor: Descriptor;
}

/** One platform's image: its config and manifest documents and its layer files. */
export interface PlatformImage {
  platform: Platform;
  config: Document;
  manifest: Document;
  layers: FileBlob[];
}

const blobPath = (dir: string, digest: string): string => join(dir, 'blobs', ...digest.split(':'));

/**
 * Writes an OCI image layout into `dir` (its blobs/, index.json and oci-layout are replaced)
 * whose index.json names the multi-platform `index` as `tag`. Layer files are hard-linked from
 * the cache where the file system allows it.
 */
export async function writeLayout(
  dir: string,
  images: readonly PlatformImage[],
  index: Document,
  tag: string,
): Promise<void> {
  await rm(join(dir, 'blobs'), { recursive: true, force: true });
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (digest: string, content: Buffer | string): Promise<void> => {
    const target = blobPath(dir, digest);
    if (typeof content !== 'string') return writeFile(target, content);
    try {
      await stat(target);
    } catch {
      await link(content, target).catch(() => copyFile(content, target));
    }
  };
  for (const image of images) {
    await put(image.config.descriptor.digest, image.config.bytes);
    await put(image.manifest.descriptor.digest, image.manifest.bytes);
    for (const layer of image.layers) await put(layer.descriptor.digest, layer.path);
  }
  await put(index.descriptor.digest, index.bytes);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const top = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ ...index.descriptor, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(top));
}

/** A reference to push to: `host[:port]/repository[:tag]`. */
export interface PushReference {
  host: string;
  repository: string;
  tag: string | undefined;
}

export function parsePushReference(reference: string): PushReference {
  const match = /^([^/]+)\/([a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::([\w][\w.-]{0,127}))?$/.exec(
    reference,
  );
  const [, host, repository, tag] = match ?? [];
  if (host === undefined || repository === undefined) {
    throw new Error(`--push ${reference}: expected host[:port]/repository[:tag]`);
  }
  return { host, repository, tag };
}

async function blobExists(
  target: SeedTarget,
  repository: string,
  digest: string,
): Promise<boolean> {
  const response = await fetch(`${target.url}/v2/${repository}/blobs/${digest}`, {
    method: 'HEAD',
  });
  return response.status === 200;
}

/**
 * Pushes the images and their index to a registry, as `docker push` would: blobs first
 * (those the registry already has are skipped), then each platform's manifest by digest,
 * then the index under `tag`. Anonymous; for a registry that needs credentials, push the
 * OCI layout with skopeo instead (the README says how).
 */
export async function pushImages(
  target: SeedTarget,
  repository: string,
  images: readonly PlatformImage[],
  index: Document,
  tag: string,
): Promise<void> {
  for (const image of images) {
    for (const layer of image.layers) {
      if (await blobExists(target, repository, layer.descriptor.digest)) continue;
      await pushBlob(target, repository, await readFile(layer.path), layer.descriptor.mediaType);
    }
    await pushBlob(target, repository, image.config.bytes, image.config.descriptor.mediaType);
    await pushManifest(target, repository, undefined, image.manifest.json);
  }
  const pushed = await pushManifest(target, repository, tag, index.json);
  if (pushed.digest !== index.descriptor.digest) {
    throw new Error(`the index pushed as ${pushed.digest}, built as ${index.descriptor.digest}`);
  }
}

/** A manifest or index as a registry serves it: its bytes, digest and parsed JSON. */
export interface FetchedManifest {
  mediaType: string;
  digest: string;
  json: {
    mediaType?: string;
    manifests?: (Descriptor & { platform?: Platform })[];
    config?: Descriptor;
    layers?: Descriptor[];
  };
}

/** GETs a manifest or index by tag or digest and checks that its bytes match their digest. */
export async function fetchManifest(
  registryUrl: string,
  repository: string,
  reference: string,
): Promise<FetchedManifest> {
  const response = await fetch(`${registryUrl}/v2/${repository}/manifests/${reference}`, {
    headers: { Accept: [OCI_INDEX, OCI_MANIFEST].join(', ') },
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  if (response.status !== 200) {
    throw new Error(`${repository}:${reference}: HTTP ${response.status}: ${bytes.toString()}`);
  }
  const digest = sha256(bytes);
  if (reference.startsWith('sha256:') && digest !== reference) {
    throw new Error(`${repository}@${reference} served content with digest ${digest}`);
  }
  return {
    mediaType: response.headers.get('content-type') ?? '',
    digest,
    json: JSON.parse(bytes.toString()) as FetchedManifest['json'],
  };
}

/** GETs a blob and checks its digest. */
export async function fetchBlob(
  registryUrl: string,
  repository: string,
  digest: string,
): Promise<Buffer> {
  const response = await fetch(`${registryUrl}/v2/${repository}/blobs/${digest}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  if (response.status !== 200) throw new Error(`blob ${digest}: HTTP ${response.status}`);
  if (sha256(bytes) !== digest) throw new Error(`blob ${digest} has digest ${sha256(bytes)}`);
  return bytes;
}
