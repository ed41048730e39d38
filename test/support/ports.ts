import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port the kernel may hand out for outgoing connections (`ip_local_port_range`). */
function ephemeralRangeStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return low !== undefined && Number.isInteger(low) ? low : 0;
  } catch {
    return 0;
  }
}

const LOWEST = 10_000;
const ATTEMPTS = 100;

/** Resolves true when nothing holds `port` on any address (the probe's socket is closed again). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '0.0.0.0', () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

/**
 * A free port, for a server that must be told its port before it starts.
 *
 * Picked below the ephemeral range: a port the kernel hands out (listen on 0) is free only until
 * an outgoing connection of any process takes it as its local port, and with many clients running
 * beside the tests the server told to use it can then fail to start with EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  const highest = ephemeralRangeStart() - 1;
  if (highest > LOWEST) {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const port = LOWEST + Math.floor(Math.random() * (highest - LOWEST + 1));
      if (await canListen(port)) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not allocate a loopback port'));
      });
    });
  });
}
