import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of the certificates and keys of one local cluster. */
export interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
  /** Client certificates by identity name (admin, kube-controller-manager, kube-scheduler, kwok). */
  clients: Record<ClientIdentity, { cert: string; key: string }>;
}

export type ClientIdentity = 'admin' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok';

/** Subject of each client certificate: CN is the user, O the groups (RBAC reads both). */
const CLIENT_SUBJECTS: Record<ClientIdentity, string> = {
  admin: '/O=system:masters/CN=kopek-admin',
  'kube-controller-manager': '/CN=system:kube-controller-manager',
  'kube-scheduler': '/CN=system:kube-scheduler',
  // KWOK acts for every fake kubelet: node status, leases, pod status.
  kwok: '/O=system:masters/CN=kwok',
};

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(
      `openssl ${args[0] ?? ''} failed while making the local cluster's certificates: ${detail}`,
      { cause: error },
    );
  }
}

async function signedCert(
  dir: string,
  name: string,
  subject: string,
  extensions: string,
): Promise<{ cert: string; key: string }> {
  const key = `${name}.key`;
  const cert = `${name}.crt`;
  await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  await openssl(dir, ['req', '-new', '-key', key, '-subj', subject, '-out', `${name}.csr`]);
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '365',
    '-extfile',
    `${name}.ext`,
    '-out',
    cert,
  ]);
  return { cert: join(dir, cert), key: join(dir, key) };
}

/** An EC P-256 key and a self-signed certificate for it, written as `dir/keyFile` and `dir/certFile`. */
export async function selfSignedCertificate(
  dir: string,
  keyFile: string,
  certFile: string,
  subject: string,
  days: number,
): Promise<void> {
  await openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    String(days),
    '-subj',
    subject,
  ]);
}

/** Creates a CA, the API server's serving certificate, client certificates and the service-account key pair. */
export async function createPki(dir: string): Promise<Pki> {
  await selfSignedCertificate(dir, 'ca.key', 'ca.crt', '/CN=kopek-local-ca', 365);
  const serving = await signedCert(
    dir,
    'kube-apiserver',
    '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' +
      'extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n',
  );
  const clientExt = 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n';
  const clients = {} as Pki['clients'];
  for (const [identity, subject] of Object.entries(CLIENT_SUBJECTS) as [ClientIdentity, string][]) {
    clients[identity] = await signedCert(dir, `client-${identity}`, subject, clientExt);
  }
  await openssl(dir, [
    'genpkey',
    '-algorithm',
    'RSA',
    '-pkeyopt',
    'rsa_keygen_bits:2048',
    '-out',
    'service-account.key',
  ]);
  await openssl(dir, [
    'pkey',
    '-in',
    'service-account.key',
    '-pubout',
    '-out',
    'service-account.pub',
  ]);
  return {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    servingCert: serving.cert,
    servingKey: serving.key,
    serviceAccountKey: join(dir, 'service-account.key'),
    serviceAccountPub: join(dir, 'service-account.pub'),
    clients,
  };
}
