/** Every command, in the order `skiff --help` lists them. */
import type { Command } from './command.js';
import { deploy } from './deploy.js';
import { info } from './info.js';
import { invoke } from './invoke.js';
import { ls } from './ls.js';
import { rm } from './rm.js';
import { url } from './url.js';

export const COMMANDS: readonly Command[] = [deploy, invoke, url, ls, info, rm];

/** Commands the issue plans whose gateway endpoints do not exist yet. */
export const PLANNED: Readonly<Record<string, string>> = {
  versions: 'a function-versions endpoint (GET /v1/functions/:name/versions)',
  rollback: 'a rollback endpoint (POST /v1/functions/:name/rollback)',
  logs: 'invocation logs on the gateway',
  workers: 'a workers endpoint on the gateway',
  drain: 'worker drain on the gateway',
  cordon: 'worker cordon on the gateway',
  uncordon: 'worker cordon on the gateway',
};
