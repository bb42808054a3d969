import t from 'tap';
import { bootCpuLimits, cpuLimits } from '../../worker/sandbox/cpu-limits.js';

t.test('CPU weight follows memory; the ceiling is a core per 1,769 MiB, at least the floor, at most the host', async (t) => {
  t.same(cpuLimits(128, 2, 0.5), { shares: 128, quotaUs: 50_000, periodUs: 100_000 }, '128 MiB: weight 128, half a core at most');
  t.equal(cpuLimits(1024, 2, 0.5).shares, 1024, 'weight in proportion to memory');
  t.equal(cpuLimits(1024, 2, 0.5).quotaUs, 57_886, 'above the floor, in proportion to memory');
  t.equal(cpuLimits(1769, 8, 0.5).quotaUs, 100_000, 'one core at 1,769 MiB');
  t.equal(cpuLimits(3538, 8, 0.5).quotaUs, 200_000, 'two cores at twice that');
  t.equal(cpuLimits(10240, 2, 0.5).quotaUs, 200_000, 'never more than the host has');
  t.equal(cpuLimits(64, 2, 0.5).quotaUs, 50_000, 'never less than the floor');
  t.equal(cpuLimits(64, 2, 1).quotaUs, 100_000, "the floor is the operator's");
  t.equal(cpuLimits(128, 2, 4).quotaUs, 200_000, 'a floor above the host is the host');
  t.ok(cpuLimits(1, 2, 0.5).shares >= 2, 'the kernel minimum weight');
});

t.test('booting, a container may use a whole core whatever its memory', async (t) => {
  t.same(bootCpuLimits(128, 2), { shares: 128, quotaUs: 100_000, periodUs: 100_000 });
  t.equal(bootCpuLimits(3538, 8).quotaUs, 200_000, 'a big function boots with its own ceiling');
  t.equal(bootCpuLimits(128, 1).quotaUs, 100_000);
});
