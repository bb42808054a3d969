import t, { type Test } from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRecord } from '../../infra/bringup/process-record.js';
import { processAlive, startProcess, type OwnedProcess } from '../../infra/services/process.js';

async function stateDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-record-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A long-running node process with `args` on its command line and `env` in its environment. */
function sleeper(t: Test, args: string[], env: Record<string, string> = {}, script = 'setInterval(() => {}, 1000)'): OwnedProcess {
  const proc = startProcess(process.execPath, ['-e', script, ...args], { env: { ...process.env, ...env }, stdio: 'ignore' });
  t.teardown(() => proc.stop('SIGKILL'));
  return proc;
}

t.test('what a killed bring-up left is ended by the next: last started first, only what names the state directory', async (t) => {
  const dir = await stateDir(t);
  const file = join(dir, 'processes.json');
  const server = sleeper(t, [`${dir}/redis`]);
  const component = sleeper(t, [], { SKIFF_STATE_DIR: dir });
  const stranger = sleeper(t, ['/somewhere/else']);
  // Ignores SIGTERM: ended by SIGKILL after the grace.
  const ready = join(dir, 'stubborn.ready');
  const stubborn = sleeper(
    t,
    [`${dir}/stubborn`],
    {},
    `process.on('SIGTERM', () => {}); require('node:fs').writeFileSync(${JSON.stringify(ready)}, ''); setInterval(() => {}, 1000)`,
  );
  const dead = startProcess(process.execPath, ['-e', '0']);
  await dead.exited;
  await writeFile(
    file,
    JSON.stringify({
      bringup: dead.child.pid,
      children: [
        { name: 'redis', pid: server.child.pid },
        { name: 'stubborn', pid: stubborn.child.pid },
        { name: 'gateway', pid: component.child.pid },
        { name: 'reused', pid: stranger.child.pid },
        { name: 'gone', pid: dead.child.pid },
      ],
    }),
  );
  // Its SIGTERM handler is set once the file is there.
  for (let i = 0; i < 500 && !existsSync(ready); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  const record = new ProcessRecord({ file, stateDir: dir });
  const ended = await record.claim(500);
  t.same(ended, [`gateway (pid ${component.child.pid})`, `stubborn (pid ${stubborn.child.pid})`, `redis (pid ${server.child.pid})`]);
  await Promise.all([server.exited, component.exited, stubborn.exited]);
  t.equal(stubborn.child.signalCode, 'SIGKILL', 'SIGKILL after the grace');
  t.ok(processAlive(stranger.child.pid!), 'a process that does not name the directory is left alone');

  record.started('redis', 1234);
  record.started('redis', 1235);
  record.started('worker', 1240);
  t.same(
    JSON.parse(readFileSync(file, 'utf8')),
    {
      bringup: process.pid,
      children: [
        { name: 'redis', pid: 1235 },
        { name: 'worker', pid: 1240 },
      ],
    },
    'the current pids, in start order',
  );
  record.clear();
  t.notOk(existsSync(file), 'a clean stop leaves no record');
});

t.test('a bring-up that still runs with the same state directory is not disturbed: the new one refuses', async (t) => {
  const dir = await stateDir(t);
  const file = join(dir, 'processes.json');
  const running = sleeper(t, ['/opt/skiff/dist/infra/bringup/main.js']);
  const child = sleeper(t, [`${dir}/redis`]);
  await writeFile(file, JSON.stringify({ bringup: running.child.pid, children: [{ name: 'redis', pid: child.child.pid }] }));
  await t.rejects(new ProcessRecord({ file, stateDir: dir }).claim(), /another bring-up \(pid \d+\) runs/);
  t.ok(processAlive(child.child.pid!), 'its children run on');
});

t.test('no record: nothing to end', async (t) => {
  const dir = await stateDir(t);
  t.same(await new ProcessRecord({ file: join(dir, 'processes.json'), stateDir: dir }).claim(), []);
});
