/**
 * Image references, normalised the way container runtimes resolve them, so that "nginx:1.27",
 * "docker.io/nginx:1.27" and "docker.io/library/nginx:1.27" are one image.
 */
import type { ImagePlatformsFact } from './facts.ts';

/** Normalises an image reference: default registry docker.io, library/ for official images, tag latest. */
export function normalizeImageRef(ref: string): string {
  let rest = ref.trim();
  let digest = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at);
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  const hasRegistry =
    slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  let registry = hasRegistry ? first.toLowerCase() : 'docker.io';
  let path = hasRegistry ? rest.slice(slash + 1) : rest;
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = 'docker.io';
  const lastSlash = path.lastIndexOf('/');
  const colon = path.indexOf(':', lastSlash + 1);
  let tag = '';
  if (colon >= 0) {
    tag = path.slice(colon);
    path = path.slice(0, colon);
  }
  if (registry === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (tag === '' && digest === '') tag = ':latest';
  return `${registry}/${path}${tag}${digest}`;
}

/**
 * Looks an image up in a platforms map keyed by any spelling of the reference: exactly, then
 * normalised, then (for "name:tag@digest") by the digest-less reference.
 */
export function lookupImagePlatforms(
  table: ReadonlyMap<string, ImagePlatformsFact>,
  image: string,
): ImagePlatformsFact | undefined {
  const normalized = normalizeImageRef(image);
  const direct = table.get(normalized);
  if (direct !== undefined) return direct;
  const at = normalized.indexOf('@');
  if (at >= 0) {
    const withoutDigest = normalized.slice(0, at);
    if (/:[^/]+$/.test(withoutDigest)) return table.get(withoutDigest);
  }
  return undefined;
}

/** Builds the normalised lookup table from a map keyed as people write references. */
export function imagePlatformTable(
  byRef: Readonly<Record<string, ImagePlatformsFact>>,
): Map<string, ImagePlatformsFact> {
  const out = new Map<string, ImagePlatformsFact>();
  for (const key of Object.keys(byRef).sort()) {
    const v = byRef[key];
    if (v !== undefined) out.set(normalizeImageRef(key), v);
  }
  return out;
}
