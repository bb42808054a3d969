/** skiff workers, drain, cordon, uncordon: the fleet of worker nodes, for operators. */
import { positionals, workerId } from '../args.js';
import { ApiError, type WorkerAction } from '../client.js';
import { formatDuration } from '../output.js';
import type { Command } from './command.js';

export const workers: Command = {
  name: 'workers',
  summary: 'list the worker nodes: state, memory, instances, pools',
  help: `Usage: skiff workers

Lists the worker nodes that run functions, as their heartbeats describe them:
  STATE      active (takes calls), cordoned (takes no new ones), draining (finishes and exits)
  ORDER      what an operator asked of it (cordoned, draining, removed), - for nothing
  ALIVE      whether its last heartbeat is recent; HEARTBEAT says how long ago it was
  MEMORY     memory handed out to instances and pools / the node's capacity
  IDLE, BUSY warm instances waiting for a call, and running calls
  POOL       pre-created sandboxes ready, by runtime
With --json: {"workers":[...]}, as the gateway answers (instances by function version id).`,
  options: {},
  async run(ctx, parsed) {
    positionals(parsed, [], 'workers');
    const fleet = await ctx.client.listWorkers();
    if (ctx.out.json) {
      ctx.out.value({ workers: fleet });
      return;
    }
    if (fleet.length === 0) {
      ctx.out.line('no workers: none has sent a heartbeat to this platform');
      return;
    }
    const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);
    ctx.out.table([
      ['ID', 'STATE', 'ORDER', 'ALIVE', 'MEMORY', 'IDLE', 'BUSY', 'POOL', 'HEARTBEAT'],
      ...[...fleet]
        .sort((a, b) => a.id.localeCompare(b.id))
        .map((w) => [
          w.id,
          w.state,
          w.order ?? '-',
          w.alive ? 'yes' : 'no',
          `${w.usedMb}/${w.capacityMb} MB`,
          String(sum(w.idle)),
          String(sum(w.busy)),
          Object.entries(w.pool)
            .map(([runtime, n]) => `${runtime}:${n}`)
            .join(',') || '-',
          `${formatDuration(w.lastHeartbeatMs)} ago`,
        ]),
    ]);
  },
};

function order(action: WorkerAction, summary: string, help: string, done: (id: string) => string): Command {
  return {
    name: action,
    summary,
    help,
    options: {},
    async run(ctx, parsed) {
      const [id] = positionals(parsed, ['ID'], action) as [string];
      workerId(id, action);
      let answer;
      try {
        answer = await ctx.client.orderWorker(id, action);
      } catch (error) {
        if (error instanceof ApiError && error.code === 'NotFound' && /not in the fleet/.test(error.message)) error.hint = "'skiff workers' lists the workers";
        throw error;
      }
      if (ctx.out.json) ctx.out.value(answer);
      else ctx.out.line(done(id));
    },
  };
}

export const drain = order(
  'drain',
  'drain a worker: it finishes its calls, hands back queued ones and exits',
  `Usage: skiff drain ID

Orders the worker ID ('skiff workers' lists them) to drain: it takes no new calls at once,
finishes the ones running, hands the ones placed on it but not started back to the others, and
then its process exits. There is no undo: start the worker again to bring it back. With --json:
{"id","order":"draining"}.`,
  (id) => `draining ${id}: it takes no new calls, finishes its running ones, then exits`,
);

export const cordon = order(
  'cordon',
  'cordon a worker: it takes no new calls',
  `Usage: skiff cordon ID

Orders the worker ID ('skiff workers' lists them) to take no new calls; the calls it is running
finish and its instances stay until they expire. 'skiff uncordon ID' undoes it. With --json:
{"id","order":"cordoned"}.`,
  (id) => `cordoned ${id}: it takes no new calls`,
);

export const uncordon = order(
  'uncordon',
  'let a cordoned worker take calls again',
  `Usage: skiff uncordon ID

Lifts a cordon: the worker ID takes calls again. A draining worker cannot be uncordoned
(InvalidRequest). With --json: {"id","order":null}.`,
  (id) => `uncordoned ${id}: it takes calls again`,
);
