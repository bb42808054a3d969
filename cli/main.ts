#!/usr/bin/env node
/** The `skiff` executable (package.json "bin"): see cli.ts, and docs/CLI.md for the commands. */
import { main } from './cli.js';

// `skiff ls | head -1` closing the pipe early is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
});
