/**
 * Registry credentials from a pod's imagePullSecrets (`kubernetes.io/dockerconfigjson`, and the
 * older `kubernetes.io/dockercfg`), matched to an image the way the kubelet's keyring does.
 * Nothing here ever puts a secret value into an error message.
 */
import { isRecord } from '../../recommender/objects/read.ts';
import { DOCKER_HUB, type ImageReference } from './reference.ts';

/** Credentials for one registry (optionally one path prefix of it). */
export interface RegistryCredentials {
  /**
   * The config's key, normalised: host[:port] with an optional path prefix ("docker.io",
   * "ghcr.io/org", "*.example.com"). Docker Hub's spellings all become "docker.io".
   */
  registry: string;
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`docker login` with an identity token), exchanged at the token service. */
  identityToken?: string;
  /** A bearer token sent to the registry as is. */
  registryToken?: string;
  /** Where these came from, for messages, e.g. "secret team-a/regcred". Never their content. */
  source?: string;
}

/** The fields of a Secret this module reads. */
export interface SecretLike {
  metadata?: { name?: string; namespace?: string };
  type?: string;
  /** Base64 values, as the API returns them. */
  data?: Readonly<Record<string, string>>;
}

export class CredentialsError extends Error {
  override name = 'CredentialsError';
}

const DOCKER_HUB_ALIASES = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'registry.hub.docker.com',
]);

/**
 * Normalises a config key: drops the scheme and Docker's API path suffixes
 * ("https://index.docker.io/v1/" → "docker.io"), lower-cases the host.
 */
export function normalizeRegistryKey(key: string): string {
  let rest = key.trim().replace(/^[a-z]+:\/\//i, '');
  rest = rest.replace(/\/+(v1|v2)?\/*$/, '');
  const slash = rest.indexOf('/');
  const host = (slash < 0 ? rest : rest.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? '' : rest.slice(slash);
  return `${DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host}${path}`;
}

function optionalString(entry: Record<string, unknown>, field: string, where: string): string {
  const value = entry[field];
  if (value === undefined || value === null || value === '') return '';
  if (typeof value !== 'string') throw new CredentialsError(`${where}.${field} is not a string`);
  return value;
}

function decodeAuth(auth: string, where: string): { username: string; password: string } {
  const decoded = Buffer.from(auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  // Re-encoding catches text that is not base64 at all (Buffer.from ignores bad characters).
  const roundTrips =
    Buffer.from(decoded, 'utf8').toString('base64').replace(/=+$/, '') === auth.replace(/=+$/, '');
  if (colon <= 0 || !roundTrips)
    throw new CredentialsError(`${where}.auth is not the base64 of "username:password"`);
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function entryCredentials(key: string, entry: unknown, where: string): RegistryCredentials {
  if (!isRecord(entry)) throw new CredentialsError(`${where} is not an object`);
  const out: RegistryCredentials = { registry: normalizeRegistryKey(key) };
  const auth = optionalString(entry, 'auth', where);
  const basic = auth === '' ? undefined : decodeAuth(auth, where);
  const username = basic?.username ?? optionalString(entry, 'username', where);
  const password = basic?.password ?? optionalString(entry, 'password', where);
  const identityToken = optionalString(entry, 'identitytoken', where);
  const registryToken = optionalString(entry, 'registrytoken', where);
  if (username !== '') out.username = username;
  if (password !== '') out.password = password;
  if (identityToken !== '') out.identityToken = identityToken;
  if (registryToken !== '') out.registryToken = registryToken;
  if (password === '' && identityToken === '' && registryToken === '')
    throw new CredentialsError(
      `${where} has neither auth, password, identitytoken nor registrytoken`,
    );
  return out;
}

/**
 * Parses a `.dockerconfigjson` (`{"auths": {...}}`) or a legacy `.dockercfg` (the map alone).
 * @param source names the origin in messages and in each result's `source`.
 * @throws CredentialsError saying which part is malformed, never what it contains.
 */
export function parseDockerConfig(
  content: string,
  source = 'docker config',
  legacy = false,
): RegistryCredentials[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    throw new CredentialsError(`${source}: not valid JSON`);
  }
  if (!isRecord(parsed)) throw new CredentialsError(`${source}: not a JSON object`);
  const auths = legacy ? parsed : parsed.auths;
  if (!isRecord(auths)) throw new CredentialsError(`${source}: has no "auths" object`);
  // In the file's order: on a tie, the first entry wins.
  return Object.keys(auths).map((key) => ({
    ...entryCredentials(key, auths[key], `${source}: auths[${JSON.stringify(key)}]`),
    source,
  }));
}

/**
 * The credentials an imagePullSecret holds. Secrets of other types give none.
 * @throws CredentialsError when the secret's content is malformed.
 */
export function credentialsFromSecret(secret: SecretLike): RegistryCredentials[] {
  const name = `secret ${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`;
  const legacy = secret.type === 'kubernetes.io/dockercfg';
  if (secret.type !== 'kubernetes.io/dockerconfigjson' && !legacy) return [];
  const key = legacy ? '.dockercfg' : '.dockerconfigjson';
  const encoded = secret.data?.[key];
  if (encoded === undefined) throw new CredentialsError(`${name}: has no ${key} key`);
  return parseDockerConfig(Buffer.from(encoded, 'base64').toString('utf8'), name, legacy);
}

/** Does a host pattern ("*.example.com", "host:5000") match a host, label by label? */
function hostMatches(pattern: string, host: string): boolean {
  const [patternName, patternPort] = splitPort(pattern);
  const [hostName, hostPort] = splitPort(host);
  if (patternPort !== hostPort) return false;
  const want = patternName.split('.');
  const have = hostName.split('.');
  return (
    want.length === have.length && want.every((label, i) => label === '*' || label === have[i])
  );
}

function splitPort(host: string): [string, string | undefined] {
  const match = /^(.*?)(?::(\d+))?$/.exec(host);
  return [match?.[1] ?? host, match?.[2]];
}

/**
 * The credentials to use for an image: of those whose registry (and path prefix) match, the
 * most specific one (longest key), the first given on a tie — as the kubelet would try first.
 */
export function selectCredentials(
  all: readonly RegistryCredentials[],
  ref: ImageReference,
): RegistryCredentials | undefined {
  let best: RegistryCredentials | undefined;
  for (const candidate of all) {
    const slash = candidate.registry.indexOf('/');
    const host = slash < 0 ? candidate.registry : candidate.registry.slice(0, slash);
    const prefix = slash < 0 ? '' : candidate.registry.slice(slash + 1);
    if (!hostMatches(host, ref.registry)) continue;
    if (prefix !== '' && ref.repository !== prefix && !ref.repository.startsWith(`${prefix}/`))
      continue;
    if (best === undefined || candidate.registry.length > best.registry.length) best = candidate;
  }
  return best;
}
