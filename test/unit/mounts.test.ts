import t from 'tap';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountPointsUnder } from '../../worker/sandbox/mounts.js';

t.test('a fresh directory has no mount points', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-mounts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'a', 'b'), { recursive: true });
  t.same(await mountPointsUnder([dir]), []);
  t.same(await mountPointsUnder([dir, join(dir, 'a'), join(dir, 'a', 'b')]), []);
});

t.test('no roots, no mount points', async (t) => {
  t.same(await mountPointsUnder([]), []);
});

t.test('nothing outside the roots is listed', async (t) => {
  const roots = ['/proc', '/sys', '/dev'];
  const points = await mountPointsUnder(roots);
  t.ok(points.length > 0, `the host has mounts under ${roots.join(' ')}`);
  for (const point of points) {
    t.ok(
      roots.some((root) => point === root || point.startsWith(`${root}/`)),
      `${point} is at or below a root`,
    );
  }
});

t.test('a root matches whole path components only', async (t) => {
  // /pro, /sy and /de are prefixes of /proc, /sys and /dev as strings, not as paths.
  t.same(await mountPointsUnder(['/pro', '/sy', '/de']), []);
});
