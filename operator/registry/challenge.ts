/**
 * The `WWW-Authenticate` challenge of a registry (RFC 7235, as the distribution spec uses it):
 * `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="…"` or
 * `Basic realm="…"`.
 */

export type Challenge =
  { scheme: 'none' } | { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service?: string };

/** Parses the first challenge of a header; undefined when absent or not Basic/Bearer. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (header === null) return undefined;
  const match = /^\s*([A-Za-z]+)(?:\s+(.*))?$/s.exec(header);
  const scheme = match?.[1]?.toLowerCase();
  if (scheme === 'basic') return { scheme: 'basic' };
  if (scheme !== 'bearer') return undefined;
  const params = new Map<string, string>();
  // key=value or key="quoted \" value", separated by commas.
  const param = /\s*([A-Za-z_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)/gy;
  const rest = match?.[2] ?? '';
  let found: RegExpExecArray | null;
  while ((found = param.exec(rest)) !== null && found[0] !== '') {
    const [, key = '', quoted, bare] = found;
    params.set(
      key.toLowerCase(),
      quoted === undefined ? (bare ?? '') : quoted.replace(/\\(.)/g, '$1'),
    );
  }
  const realm = params.get('realm');
  if (realm === undefined || realm === '') return undefined;
  const service = params.get('service');
  return service === undefined ? { scheme: 'bearer', realm } : { scheme: 'bearer', realm, service };
}
