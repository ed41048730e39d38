/**
 * What registry documents say about platforms: OCI image indexes and Docker manifest lists list
 * them; a single image manifest points at a config blob that names its os/architecture.
 * Pure functions over response bodies; the client does the I/O.
 */
import { isRecord } from '../../recommender/objects/read.ts';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';

/** Accept header for manifest requests: all four kinds, so the registry never down-converts. */
export const MANIFEST_ACCEPT = [
  OCI_INDEX,
  DOCKER_MANIFEST_LIST,
  OCI_MANIFEST,
  DOCKER_MANIFEST,
].join(', ');

/** A manifest response that is not what its type says (the message is safe to show). */
export class ManifestError extends Error {
  override name = 'ManifestError';
}

/** An index's platforms, or a single image's config blob to read the platform from. */
export type ParsedManifest =
  | { kind: 'index'; platforms: string[] }
  | { kind: 'image'; config: { digest: string; mediaType: string } };

interface Platform {
  os?: unknown;
  architecture?: unknown;
  variant?: unknown;
}

function parseJson(body: Uint8Array, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    throw new ManifestError(`the ${what} is not valid JSON`);
  }
  if (!isRecord(parsed)) throw new ManifestError(`the ${what} is not a JSON object`);
  return parsed;
}

/** "os/arch" or "os/arch/variant", or undefined when os or architecture is missing. */
export function formatPlatform(platform: Platform): string | undefined {
  const { os, architecture, variant } = platform;
  if (
    typeof os !== 'string' ||
    typeof architecture !== 'string' ||
    os === '' ||
    architecture === ''
  )
    return undefined;
  return typeof variant === 'string' && variant !== ''
    ? `${os}/${architecture}/${variant}`
    : `${os}/${architecture}`;
}

/** Sorted, without duplicates. */
export function normalizePlatforms(platforms: Iterable<string>): string[] {
  return [...new Set(platforms)].sort();
}

/**
 * True for entries that are not runnable images: BuildKit's attestation manifests
 * (`unknown/unknown`, annotated `vnd.docker.reference.type: attestation-manifest`).
 */
function isAttestation(entry: Record<string, unknown>, platform: string | undefined): boolean {
  const annotations = isRecord(entry.annotations) ? entry.annotations : {};
  return (
    platform === 'unknown/unknown' ||
    annotations['vnd.docker.reference.type'] === 'attestation-manifest'
  );
}

function indexPlatforms(document: Record<string, unknown>): string[] {
  if (!Array.isArray(document.manifests))
    throw new ManifestError('the index has no "manifests" list');
  const platforms: string[] = [];
  for (const entry of document.manifests as unknown[]) {
    if (!isRecord(entry) || !isRecord(entry.platform)) continue;
    const platform = formatPlatform(entry.platform);
    if (platform !== undefined && !isAttestation(entry, platform)) platforms.push(platform);
  }
  if (platforms.length === 0) throw new ManifestError('the index lists no image platform');
  return normalizePlatforms(platforms);
}

/**
 * Reads a manifest response. The media type comes from Content-Type, falling back to the
 * document's own `mediaType` (some registries answer with a generic type).
 * @throws ManifestError for documents that are not an image index or image manifest.
 */
export function parseManifest(body: Uint8Array, contentType: string | null): ParsedManifest {
  const document = parseJson(body, 'manifest');
  const header = (contentType ?? '').split(';')[0]?.trim() ?? '';
  const declared = typeof document.mediaType === 'string' ? document.mediaType : '';
  const mediaType = [OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST].includes(
    header,
  )
    ? header
    : declared;
  if (mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST)
    return { kind: 'index', platforms: indexPlatforms(document) };
  if (mediaType === OCI_MANIFEST || mediaType === DOCKER_MANIFEST) {
    const config = document.config;
    if (!isRecord(config) || typeof config.digest !== 'string')
      throw new ManifestError('the image manifest has no config descriptor');
    const configType = typeof config.mediaType === 'string' ? config.mediaType : '';
    if (configType !== OCI_CONFIG && configType !== DOCKER_CONFIG)
      throw new ManifestError(
        `the manifest is not a container image (its config type is ${JSON.stringify(configType).slice(0, 100)})`,
      );
    return { kind: 'image', config: { digest: config.digest, mediaType: configType } };
  }
  const shown = JSON.stringify(mediaType || header).slice(0, 100);
  throw new ManifestError(`unsupported manifest media type ${shown}`);
}

/**
 * The platform an image config blob declares.
 * @throws ManifestError when it names no os/architecture.
 */
export function platformFromConfig(body: Uint8Array): string {
  const platform = formatPlatform(parseJson(body, 'image config'));
  if (platform === undefined)
    throw new ManifestError('the image config names no "os" and "architecture"');
  return platform;
}
