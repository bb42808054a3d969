/** Every command, in the order `skiff --help` lists them. */
import { audit } from './audit.js';
import type { Command } from './command.js';
import { deploy } from './deploy.js';
import { info } from './info.js';
import { invoke } from './invoke.js';
import { keys } from './keys.js';
import { logs } from './logs.js';
import { ls } from './ls.js';
import { rm } from './rm.js';
import { rollback } from './rollback.js';
import { tenants } from './tenants.js';
import { url } from './url.js';
import { versions } from './versions.js';
import { whoami } from './whoami.js';
import { cordon, drain, uncordon, workers } from './workers.js';

export const COMMANDS: readonly Command[] = [
  deploy,
  invoke,
  url,
  ls,
  info,
  versions,
  rollback,
  rm,
  logs,
  whoami,
  tenants,
  keys,
  audit,
  workers,
  cordon,
  uncordon,
  drain,
];
