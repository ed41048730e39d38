import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Clock, Timer } from './clock.ts';
import { errorMessage, type Logger } from './log.ts';

/**
 * The metrics server's certificate: either one made at start (self-signed, ECDSA P-256, in
 * memory only) or `tls.crt`/`tls.key` from a directory — a mounted Secret, e.g. one cert-manager
 * issues and renews. The directory is read again every minute so a renewed certificate is
 * served without a restart.
 */

export interface CertificatePair {
  /** PEM. */
  cert: string;
  /** PEM. */
  key: string;
}

// ---- a minimal DER writer: just what one X.509 certificate needs ----------------------------

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const sequence = (...content: Buffer[]): Buffer => der(0x30, ...content);
const set = (...content: Buffer[]): Buffer => der(0x31, ...content);
const explicit = (n: number, content: Buffer): Buffer => der(0xa0 + n, content);
const utf8 = (text: string): Buffer => der(0x0c, Buffer.from(text, 'utf8'));
const octets = (content: Buffer): Buffer => der(0x04, content);
const bitString = (content: Buffer): Buffer => der(0x03, Buffer.from([0]), content);

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128))
      chunk.unshift((value & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

/**
 * A non-negative INTEGER from unsigned big-endian bytes, in DER's minimal form: no leading zero
 * byte unless the next byte's high bit is set (OpenSSL refuses a certificate whose serial breaks
 * this with "illegal padding").
 */
function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const minimal = bytes.subarray(start);
  const content = (minimal[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), minimal]) : minimal;
  return der(0x02, content);
}

/** UTCTime up to 2049, GeneralizedTime after, as RFC 5280 asks. */
function time(ms: number): Buffer {
  const iso = new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return Number(iso.slice(0, 4)) < 2050
    ? der(0x17, Buffer.from(`${iso.slice(2)}Z`))
    : der(0x18, Buffer.from(`${iso}Z`));
}

function ipBytes(address: string): Buffer {
  if (isIP(address) === 4) return Buffer.from(address.split('.').map(Number));
  // IPv6: expand "::" and write eight 16-bit groups.
  const [head = '', tail] = address.split('::');
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return Buffer.concat(
    all.map((group) => {
      const word = Buffer.alloc(2);
      word.writeUInt16BE(parseInt(group, 16));
      return word;
    }),
  );
}

const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));

/**
 * A self-signed serving certificate for `hosts` (DNS names and IP addresses), valid from an hour
 * ago for `days` days. The key never leaves the process.
 */
export function selfSignedCertificate(
  hosts: readonly string[],
  clock: Clock,
  days = 365,
): CertificatePair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = clock.now();
  const name = sequence(set(sequence(oid('2.5.4.3'), utf8('kopek-metrics'))));
  const altNames = hosts.map((host) =>
    isIP(host) ? der(0x87, ipBytes(host)) : der(0x82, Buffer.from(host, 'ascii')),
  );
  const extension = (id: string, critical: boolean, value: Buffer): Buffer =>
    sequence(oid(id), ...(critical ? [der(0x01, Buffer.from([0xff]))] : []), octets(value));
  const extensions = [
    // basicConstraints: not a CA.
    extension('2.5.29.19', true, sequence()),
    // keyUsage: digitalSignature.
    extension('2.5.29.15', true, der(0x03, Buffer.from([7, 0x80]))),
    // extKeyUsage: serverAuth.
    extension('2.5.29.37', false, sequence(oid('1.3.6.1.5.5.7.3.1'))),
    extension('2.5.29.17', false, sequence(...altNames)),
  ];
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const tbs = sequence(
    explicit(0, der(0x02, Buffer.from([2]))),
    unsignedInteger(serial),
    ECDSA_WITH_SHA256,
    name,
    sequence(time(now - 3_600_000), time(now + days * 86_400_000)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const certificate = sequence(tbs, ECDSA_WITH_SHA256, bitString(signature));
  const base64 = certificate.toString('base64').replace(/.{64}/g, '$&\n');
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${base64.trimEnd()}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** Reads `tls.crt` and `tls.key` (the keys of a `kubernetes.io/tls` Secret) from `dir`. */
export async function readCertificateDir(dir: string): Promise<CertificatePair> {
  const [cert, key] = await Promise.all([
    readFile(join(dir, 'tls.crt'), 'utf8'),
    readFile(join(dir, 'tls.key'), 'utf8'),
  ]);
  return { cert, key };
}

/**
 * Re-reads the certificate directory every `intervalMs` and calls `onChange` with a pair that
 * differs from the last one read (a Secret's mounted files change when it is renewed). A read
 * that fails (a renewal half-written) is logged and the served certificate kept.
 */
export function watchCertificateDir(options: {
  dir: string;
  current: CertificatePair;
  clock: Clock;
  log: Logger;
  onChange: (pair: CertificatePair) => void;
  intervalMs?: number;
}): Timer {
  const digest = (pair: CertificatePair): string =>
    createHash('sha256').update(pair.cert).update(pair.key).digest('hex');
  let served = digest(options.current);
  return options.clock.setInterval(() => {
    readCertificateDir(options.dir).then(
      (pair) => {
        const next = digest(pair);
        if (next === served) return;
        served = next;
        options.onChange(pair);
        options.log.info('metrics certificate reloaded', { dir: options.dir });
      },
      (error: unknown) => {
        options.log.warn('could not read the metrics certificate; serving the previous one', {
          dir: options.dir,
          error: errorMessage(error),
        });
      },
    );
  }, options.intervalMs ?? 60_000);
}

/**
 * The metrics server's certificate for `kopek run`: from `certDir` (watched for renewals), or
 * self-signed for this host's names and the address it listens on.
 */
export async function metricsTls(
  certDir: string | undefined,
  listenHost: string,
  clock: Clock,
  log: Logger,
): Promise<{ pair: CertificatePair; watch(onChange: (pair: CertificatePair) => void): Timer }> {
  if (certDir !== undefined) {
    const pair = await readCertificateDir(certDir);
    return {
      pair,
      watch: (onChange) =>
        watchCertificateDir({ dir: certDir, current: pair, clock, log, onChange }),
    };
  }
  const hosts = new Set(['localhost', hostname(), '127.0.0.1', '::1']);
  if (listenHost !== '0.0.0.0' && listenHost !== '::') hosts.add(listenHost);
  return {
    pair: selfSignedCertificate([...hosts], clock),
    watch: () => ({ cancel: () => undefined }),
  };
}
