import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Component, waitUntil } from './process.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('Component', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-process-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names the component and shows the end of its log when it fails to start', async () => {
    const component = new Component({
      name: 'kube-apiserver',
      command: 'sh',
      args: ['-c', 'echo "Error: invalid port 99999"; exit 3'],
      logPath: join(dir, 'kube-apiserver.log'),
    });
    component.start();
    await expect(
      waitUntil(component, 'became healthy', () => Promise.resolve(false), 10_000),
    ).rejects.toThrow(
      /kube-apiserver stopped before it became healthy; it exited \(\d+\)\. Last lines of .*kube-apiserver\.log:\nError: invalid port 99999/,
    );
  });

  it('stops the component when its owner dies, even by SIGKILL', async () => {
    const owner = spawn('sleep', ['300'], { stdio: 'ignore' });
    const pidFile = join(dir, 'pid');
    const component = new Component({
      name: 'sleeper',
      command: 'sh',
      args: ['-c', `echo $$ > ${pidFile}; exec sleep 300`],
      logPath: join(dir, 'sleeper.log'),
    });
    component.start(owner.pid);
    await expect
      .poll(async () => readFile(pidFile, 'utf8').catch(() => ''), { timeout: 5000 })
      .not.toBe('');
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(alive(pid)).toBe(true);
    owner.kill('SIGKILL');
    await expect.poll(() => alive(pid), { timeout: 10_000, interval: 200 }).toBe(false);
    await expect.poll(() => component.running, { timeout: 5000 }).toBe(false);
  });

  it('stops on request and can be started again', async () => {
    const script = join(dir, 'serve.sh');
    await writeFile(
      script,
      'trap "echo stopping; exit 0" TERM\necho started\nwhile :; do sleep 0.1; done\n',
    );
    const component = new Component({
      name: 'server',
      command: 'sh',
      args: [script],
      logPath: join(dir, 'server.log'),
    });
    component.start();
    expect(component.running).toBe(true);
    await component.stop();
    expect(component.running).toBe(false);
    component.start();
    expect(component.running).toBe(true);
    await component.stop();
  });
});
