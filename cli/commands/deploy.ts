/** skiff deploy DIR: zip a directory (node_modules included) and deploy it, skiff.json giving defaults; or --image REF. */
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { FUNCTION_NAME, UsageError, envPairs, int, positionals, str, strs } from '../args.js';
import type { DeployRequest, FunctionInfo } from '../client.js';
import { AUTH_VALUES, MANIFEST, readManifest } from '../manifest.js';
import { formatBytes, formatDuration } from '../output.js';
import { packDirectory } from '../pack.js';
import { withAbsoluteUrl, type Command, type Context } from './command.js';

/** The whole-number settings: API field (as in skiff.json) and flag. */
const NUMBER_FLAGS = [
  ['memoryMb', 'memory'],
  ['timeoutMs', 'timeout'],
  ['concurrency', 'concurrency'],
  ['idleTimeoutMs', 'idle-timeout'],
  ['minWarm', 'min-warm'],
  ['maxInstances', 'max-instances'],
] as const;

export const deploy: Command = {
  name: 'deploy',
  summary: 'zip a directory (with its node_modules) and deploy it as a function',
  help: `Usage: skiff deploy DIR [options]
       skiff deploy --image REF --name NAME [options]

Zips DIR (node_modules included, .git left out) and deploys it: a new version of the function,
which every call after this command returns runs. DIR/${MANIFEST} gives defaults in the API's
field names (name, runtime, handler, memoryMb, timeoutMs, concurrency, idleTimeoutMs, minWarm,
maxInstances, auth, env); flags win over it. The name defaults to the directory's name. Progress goes
to stderr; the version and the function's URL to stdout. With --image, no directory: the function
runs an image already in Skiff's registry, built FROM skiff/runtime/<runtime>:current with the
function under /var/task (docs/IMAGES.md); the gateway resolves its tag to a digest.

Options:
  --name NAME            function name (lowercase letters, digits, -)
  --image REF            deploy this image instead of a directory (e.g. team/app:1.0)
  --runtime RUNTIME      default nodejs22
  --handler FILE.EXPORT  default index.handler
  --memory MB            memory limit (gateway default 128)
  --timeout MS           time limit per call (gateway default 30000)
  --concurrency N        calls one instance serves at once (gateway default 1)
  --idle-timeout MS      an idle instance is stopped after this
  --min-warm N           instances kept warm
  --max-instances N      most instances at once
  --auth none|key        key: calling the function needs an API key too (default none)
  --env KEY=VALUE        an environment variable (repeatable; merged over ${MANIFEST}'s env)

Examples:
  skiff deploy ./hello
  skiff deploy . --name api --memory 256 --env STAGE=prod --env LOG=debug
  skiff deploy --image team/greeter:1.0 --name greeter --handler main.greet`,
  options: {
    name: { type: 'string' },
    image: { type: 'string' },
    runtime: { type: 'string' },
    handler: { type: 'string' },
    memory: { type: 'string' },
    timeout: { type: 'string' },
    concurrency: { type: 'string' },
    'idle-timeout': { type: 'string' },
    'min-warm': { type: 'string' },
    'max-instances': { type: 'string' },
    auth: { type: 'string' },
    env: { type: 'string', multiple: true },
  },
  async run(ctx, parsed) {
    const { values } = parsed;
    const image = str(values, 'image');
    const [dirArg] = positionals(parsed, image === undefined ? ['DIR'] : [], 'deploy') as [string | undefined];
    const dir = dirArg === undefined ? undefined : resolve(ctx.cwd, dirArg);
    if (dir !== undefined) {
      const dirStat = await stat(dir).catch(() => undefined);
      if (!dirStat) throw new UsageError(`${dirArg}: no such directory`, 'deploy');
      if (!dirStat.isDirectory()) throw new UsageError(`${dirArg} is not a directory`, 'deploy');
    } else if (str(values, 'name') === undefined) {
      throw new UsageError('--image needs --name', 'deploy');
    }

    const manifest = dir === undefined ? {} : await readManifest(dir);
    const name = str(values, 'name') ?? manifest.name ?? basename(dir ?? '');
    if (!FUNCTION_NAME.test(name)) {
      const from =
        str(values, 'name') !== undefined ? '--name' : manifest.name !== undefined ? `${MANIFEST}'s name` : `the directory name ${JSON.stringify(name)}`;
      throw new UsageError(
        `${from} is not a function name (a lowercase letter, then up to 62 lowercase letters, digits or -); pass --name or set "name" in ${MANIFEST}`,
        'deploy',
      );
    }
    const request: Omit<DeployRequest, 'code'> = {
      name,
      // The gateway checks the runtime and answers 400 naming it; the CLI does not keep a list.
      runtime: (str(values, 'runtime') ?? manifest.runtime ?? 'nodejs22') as DeployRequest['runtime'],
      handler: str(values, 'handler') ?? manifest.handler ?? 'index.handler',
    };
    for (const [field, flag] of NUMBER_FLAGS) {
      const value = int(values, flag, 'deploy') ?? manifest[field];
      if (value !== undefined) request[field] = value;
    }
    const auth = str(values, 'auth') ?? manifest.auth;
    if (auth !== undefined) {
      if (!(AUTH_VALUES as readonly string[]).includes(auth)) throw new UsageError(`--auth must be none or key, not ${JSON.stringify(auth)}`, 'deploy');
      request.auth = auth as 'none' | 'key';
    }
    const env = { ...manifest.env, ...envPairs(strs(values, 'env'), 'deploy') };
    if (Object.keys(env).length > 0) request.env = env;
    if (manifest.schedules !== undefined) request.schedules = manifest.schedules;
    if (manifest.cors !== undefined) request.cors = manifest.cors;

    const progress = ctx.out.progress();
    if (dir === undefined || dirArg === undefined) {
      progress.done(`deploying image ${image ?? ''} as ${name}`);
      const started = Date.now();
      const info = await ctx.client.deploy({ ...request, image: image ?? '' });
      progress.done(`deployed in ${formatDuration(Date.now() - started)}`);
      report(ctx, info);
      return;
    }
    const zipStarted = Date.now();
    const packed = await packDirectory(dir, (p) =>
      progress.update(`zipping ${dirArg}: ${p.files}/${p.totalFiles} files, ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)}`),
    );
    progress.done(
      `zipped ${packed.files} files (${formatBytes(packed.bytes)}) into ${formatBytes(packed.zip.length)} in ${formatDuration(Date.now() - zipStarted)}`,
    );
    for (const warning of packed.warnings) ctx.out.note(`warning: ${warning}`);

    const zipBase64 = packed.zip.toString('base64');
    const body: DeployRequest = { ...request, code: { zip: zipBase64 } };
    const uploadStarted = Date.now();
    progress.done(`uploading ${formatBytes(packed.zip.length)} (${formatBytes(zipBase64.length)} as base64) to ${ctx.client.gateway}`);
    let uploaded = false;
    const info = await ctx.client.deploy(body, (sent, total) => {
      if (uploaded) return;
      if (sent < total) {
        progress.update(`uploading: ${formatBytes(sent)} of ${formatBytes(total)} (${Math.floor((sent / total) * 100)}%)`);
        return;
      }
      uploaded = true;
      progress.update(`uploaded in ${formatDuration(Date.now() - uploadStarted)}; the gateway is checking the code and building and pushing the image`, true);
    });
    progress.done(`deployed in ${formatDuration(Date.now() - uploadStarted)}`);
    report(ctx, info);
  },
};

/** The deployed version, its image and URL on stdout (or the whole answer with --json). */
function report(ctx: Context, info: FunctionInfo): void {
  if (ctx.out.json) {
    ctx.out.value(withAbsoluteUrl(ctx, info));
    return;
  }
  ctx.out.line(`deployed ${info.name} version ${info.version}`);
  ctx.out.line(`image: ${info.image}`);
  ctx.out.line(`url: ${ctx.client.functionUrl(info)}`);
}
