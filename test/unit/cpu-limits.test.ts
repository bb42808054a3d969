import t from 'tap';
import { cpuLimits } from '../../worker/sandbox/cpu-limits.js';

t.test('CPU weight follows memory; the ceiling is a core per 1,769 MiB, at least one, at most the host', async (t) => {
  t.same(cpuLimits(128, 2), { shares: 128, quotaUs: 100_000, periodUs: 100_000 }, '128 MiB: weight 128, one core at most');
  t.equal(cpuLimits(1024, 2).shares, 1024, 'weight in proportion to memory');
  t.equal(cpuLimits(1769, 8).quotaUs, 100_000, 'one core at 1,769 MiB');
  t.equal(cpuLimits(3538, 8).quotaUs, 200_000, 'two cores at twice that');
  t.equal(cpuLimits(10240, 2).quotaUs, 200_000, 'never more than the host has');
  t.equal(cpuLimits(64, 2).quotaUs, 100_000, 'never less than one core');
  t.ok(cpuLimits(1, 2).shares >= 2, 'the kernel minimum weight');
});
