import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * What the soak reads about a running kopek process from /proc: its open file descriptors and
 * its TCP connections to one port (the API server's proxy: the watches and the request pool).
 */

/** Socket inodes among the process's file descriptors, and how many descriptors it has. */
function descriptors(pid: number): { count: number; sockets: Set<string> } {
  const sockets = new Set<string>();
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    count++;
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) sockets.add(inode);
    } catch {
      // closed while we read
    }
  }
  return { count, sockets };
}

/** Inodes of established TCP connections (IPv4 and IPv6) whose remote port is `port`. */
function establishedTo(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const remote = fields[2];
      const state = fields[3];
      const inode = fields[9];
      if (!remote || state !== '01' || !inode) continue;
      if (parseInt(remote.split(':')[1] ?? '', 16) === port) inodes.add(inode);
    }
  }
  return inodes;
}

/** Anonymous resident memory of `pid` in bytes (RssAnon in /proc/PID/status, given in kB). */
function rssAnonBytes(pid: number): number {
  const kB = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kB ?? 0) * 1024;
}

/** Open descriptors of `pid`, its established connections to `port`, its anonymous RSS. */
export function processFacts(
  pid: number,
  port: number,
): { fds: number; connections: number; rssAnonBytes: number } {
  const { count, sockets } = descriptors(pid);
  const remote = establishedTo(port);
  let connections = 0;
  for (const inode of sockets) if (remote.has(inode)) connections++;
  return { fds: count, connections, rssAnonBytes: rssAnonBytes(pid) };
}
