import t from 'tap';
import type { FunctionEvent } from '../../infra/queue/jobs.js';
import { reactToFunctionEvent } from '../../worker/function-events.js';

t.test('deploys retire older versions, wake the warm keeper and prefetch the image; deletes retire every version', async (t) => {
  const retired: Array<[string, number | undefined]> = [];
  const prefetched: string[] = [];
  let checks = 0;
  const deployed: Array<[string, number]> = [];
  const reactions = {
    instances: { retireFunction: (name: string, keep?: number) => void retired.push([name, keep]) },
    warmKeeper: { check: () => void checks++, deployed: (name: string, version: number) => void deployed.push([name, version]) },
    prefetch: (image: string) => void prefetched.push(image),
  };
  const events: FunctionEvent[] = [
    { type: 'deployed', name: 'f', version: 3, image: 'registry/f:3' },
    { type: 'deployed', name: 'g', version: 1 },
    { type: 'deleted', name: 'f' },
  ];
  for (const event of events) reactToFunctionEvent(reactions, event);
  t.same(retired, [
    ['f', 3],
    ['g', 1],
    ['f', undefined],
  ]);
  t.equal(checks, 2, 'the warm keeper is told of each deploy');
  t.same(
    deployed,
    [
      ['f', 3],
      ['g', 1],
    ],
    'and of which version, to preload it',
  );
  t.same(prefetched, ['registry/f:3'], 'only a deploy with an image prefetches');
});
