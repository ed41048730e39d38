/**
 * Image references parsed the way container runtimes resolve them (the grammar of
 * github.com/distribution/reference): "nginx" is docker.io/library/nginx:latest, a first path
 * component with a dot, a colon or "localhost" is a registry host, and a digest pins the content.
 */

/** A parsed, normalised image reference. */
export interface ImageReference {
  /** Registry host as people name it: "docker.io" for Docker Hub, else host[:port]. */
  registry: string;
  /** Repository path inside the registry, e.g. "library/nginx". */
  repository: string;
  /** Tag; "latest" when neither a tag nor a digest was given. Absent for digest-only references. */
  tag?: string;
  /** Content digest ("sha256:…") when the reference pins one; it wins over the tag. */
  digest?: string;
}

/** Thrown for a reference that no runtime could pull; the message says what is wrong. */
export class InvalidReferenceError extends Error {
  override name = 'InvalidReferenceError';
}

export const DOCKER_HUB = 'docker.io';
/** Docker Hub serves its registry API from this host, not from docker.io. */
const DOCKER_HUB_API = 'registry-1.docker.io';

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]{1,5})?$`,
);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha512: 128 };
const MAX_NAME_LENGTH = 255;

function invalid(image: string, why: string): InvalidReferenceError {
  return new InvalidReferenceError(`invalid image reference "${image}": ${why}`);
}

function parseDigest(image: string, digest: string): string {
  if (!DIGEST.test(digest)) throw invalid(image, `"${digest}" is not a digest (algorithm:hex)`);
  const [algorithm = '', hex = ''] = digest.split(':');
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length !== undefined && !new RegExp(`^[a-f0-9]{${length}}$`).test(hex))
    throw invalid(image, `a ${algorithm} digest has ${length} lower-case hex digits`);
  return digest;
}

/** Splits "host/path" the way Docker does: the first component is a host only when it looks like one. */
function splitRegistry(name: string): { registry: string; repository: string } {
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const isHost =
    slash >= 0 &&
    (first.includes('.') ||
      first.includes(':') ||
      first === 'localhost' ||
      first !== first.toLowerCase());
  if (!isHost) return { registry: DOCKER_HUB, repository: name };
  let registry = first.toLowerCase();
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  return { registry, repository: name.slice(slash + 1) };
}

/**
 * Parses and normalises an image reference: `nginx`, `nginx:1.27`, `docker.io/x/y`,
 * `host:5000/a/b:tag`, `repo@sha256:…`, `repo:tag@sha256:…`.
 * @throws InvalidReferenceError naming the reference and what is wrong with it.
 */
export function parseImageReference(image: string): ImageReference {
  if (image.trim() === '') throw new InvalidReferenceError('the image reference is empty');
  if (image !== image.trim() || /\s/.test(image)) throw invalid(image, 'it contains white space');
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = parseDigest(image, rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    if (!TAG.test(tag)) throw invalid(image, `"${tag}" is not a valid tag`);
    rest = rest.slice(0, colon);
  }
  const { registry, repository: path } = splitRegistry(rest);
  if (!DOMAIN.test(registry)) throw invalid(image, `"${registry}" is not a valid registry host`);
  if (path === '') throw invalid(image, 'the repository name is missing');
  for (const component of path.split('/')) {
    if (component !== component.toLowerCase())
      throw invalid(image, 'repository names must be lower case');
    if (!PATH_COMPONENT.test(component))
      throw invalid(image, `"${component}" is not a valid repository path component`);
  }
  const repository = registry === DOCKER_HUB && !path.includes('/') ? `library/${path}` : path;
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH)
    throw invalid(image, `the name is longer than ${MAX_NAME_LENGTH} characters`);
  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  else if (tag === undefined) ref.tag = 'latest';
  return ref;
}

/** The canonical spelling, e.g. "docker.io/library/nginx:latest" or "ghcr.io/a/b:1@sha256:…". */
export function formatImageReference(ref: ImageReference): string {
  const tag = ref.tag === undefined ? '' : `:${ref.tag}`;
  const digest = ref.digest === undefined ? '' : `@${ref.digest}`;
  return `${ref.registry}/${ref.repository}${tag}${digest}`;
}

/** The host that serves the registry API for `registry` (Docker Hub's is not docker.io). */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** What to ask the manifests endpoint for: the digest when pinned, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}
