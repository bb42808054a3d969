/**
 * Failures of the machinery under a call: the OCI runtime, mounts, the egress network, the host
 * itself, the runtime's socket, the command launcher, a layer's unpacking. These are Skiff's internal errors; what a user is told is a
 * `SkiffError` (infra/errors.ts), whose code maps to HTTP in one table.
 *
 * One class with a closed set of kinds, tested with `isHostError(error, kind)`, never by message
 * or shape (a kind that tells several failures apart says which in `reason`). A failed host command
 * carries its command line, how it ended and its stderr; a wrapped failure keeps it as `cause`.
 *
 * A HostError is never shown to a user as itself: the boundary that knows what it means turns it
 * into a SkiffError, keeping it as the cause (a sandbox that cannot be made: `Unavailable`, in
 * runc-sandbox.ts). One that reaches the worker's agent unconverted is logged there and answered
 * `Internal`. The brand makes `isHostError` work across copies of this module.
 */

export type HostErrorKind =
  /** The OCI runtime (runc) failed a command, or could not be run. */
  | 'oci-runtime'
  /** The OCI runtime has no container of that id (it was removed, or never made). */
  | 'not-found'
  /** `mount` or `umount` failed. */
  | 'mount'
  /** The egress network could not be set up, attached, detached or removed. */
  | 'network'
  /** The host cannot do what a sandbox needs (a path containers cannot reach, one too long for a socket). */
  | 'unsuitable'
  /** The runtime's connection is gone or never came: its process exited, or it did not connect in time. */
  | 'channel-closed'
  /** The worker's command launcher failed a command (its `reason` says how: a LauncherFailure). */
  | 'launcher'
  /** A host command unpacking an image layer (mknod or setfattr, for its whiteouts) failed or could not run. */
  | 'unpack'
  /** A secret sealed under the platform key does not open (its `reason`: a SealFailure). */
  | 'platform-key';

export const HOST_ERROR_KINDS: readonly HostErrorKind[] = [
  'oci-runtime',
  'not-found',
  'mount',
  'network',
  'unsuitable',
  'channel-closed',
  'launcher',
  'unpack',
  'platform-key',
];

/**
 * How the command launcher (worker/process/launcher.ts) failed a command, the `reason` of a
 * `launcher` HostError: it died while the command ran (`LauncherDied`), did not come up
 * (`LauncherUnavailable`), was stopped (`LauncherStopped`), or could not start the command
 * (`CommandNotStarted`: no such binary, say).
 */
export type LauncherFailure = 'LauncherDied' | 'LauncherUnavailable' | 'LauncherStopped' | 'CommandNotStarted';

/**
 * Why a sealed secret (infra/secrets/secret-box.ts) did not open, the `reason` of a `platform-key`
 * HostError: sealed under a key this process does not hold (`UnknownPlatformKey`), altered or
 * moved to another owner (`NotAuthentic`), or not a sealed value at all (`Malformed`).
 */
export type SealFailure = 'UnknownPlatformKey' | 'NotAuthentic' | 'Malformed';

/** A finer, stable code within a kind, for the kinds that have one. */
export type HostErrorReason = LauncherFailure | SealFailure;

/** How a host command ended (worker/process/command-runner.ts CommandResult fits). */
export interface CommandEnd {
  code: number | null;
  signal: string | null;
  stderr: string;
}

export interface HostErrorOptions {
  cause?: unknown;
  /** The command line that failed, when a host command did. */
  command?: string;
  /** How it ended, when it ran: its exit code (null: a signal ended it) and signal, and its stderr. */
  end?: CommandEnd;
  /** What went wrong within the kind, where the kind tells several apart (`launcher`, `platform-key`). */
  reason?: HostErrorReason;
}

const BRAND = Symbol.for('skiff.host-error');

export class HostError extends Error {
  declare readonly [BRAND]: true;
  readonly kind: HostErrorKind;
  readonly command: string | undefined;
  /** Undefined when the command did not run (then `cause` says why) or no command was involved. */
  readonly exitCode: number | null | undefined;
  readonly signal: string | null | undefined;
  readonly stderr: string | undefined;
  /** Undefined for kinds without reasons. */
  readonly reason: HostErrorReason | undefined;

  constructor(kind: HostErrorKind, message: string, options: HostErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    // Not enumerable: a spread copy of an error must not pass for one.
    Object.defineProperty(this, BRAND, { value: true, enumerable: false });
    this.name = 'HostError';
    this.kind = kind;
    this.command = options.command;
    this.exitCode = options.end?.code;
    this.signal = options.end?.signal;
    this.stderr = options.end?.stderr.trim();
    this.reason = options.reason;
  }
}

/** Whether `value` is a HostError, and of `kind` if one is given. */
export function isHostError(value: unknown, kind?: HostErrorKind): value is HostError {
  if (typeof value !== 'object' || value === null || (value as Record<symbol, unknown>)[BRAND] !== true) return false;
  return kind === undefined || (value as HostError).kind === kind;
}

/** How a command ended, for messages: `code 1`, `signal SIGKILL`. */
function endText(end: CommandEnd): string {
  return end.signal ? `signal ${end.signal}` : `code ${end.code}`;
}

/**
 * A host command that ran and failed: `<command> failed (code 1): <stderr>`, or `(signal X)` and
 * no stderr when it printed none. `printed` replaces stderr in the message (some tools say why
 * on stdout).
 */
export function commandFailed(kind: HostErrorKind, command: string, end: CommandEnd, printed = end.stderr.trim()): HostError {
  return new HostError(kind, `${command} failed (${endText(end)})${printed ? `: ${printed}` : ''}`, { command, end });
}

/** A host command that could not be run at all (the launcher failed, or the binary is missing). */
export function commandNotRun(kind: HostErrorKind, command: string, cause: unknown): HostError {
  return new HostError(kind, `${command} could not run: ${cause instanceof Error ? cause.message : String(cause)}`, { command, cause });
}

/**
 * Whether `value` is one of Node's own system errors (a failed system call: `ENOENT`, `ENOSPC`,
 * `EACCES`...). Node gives them no class of their own; they are told by their errno and syscall.
 */
export function isErrnoError(value: unknown): value is NodeJS.ErrnoException {
  return value instanceof Error && typeof (value as NodeJS.ErrnoException).code === 'string' && typeof (value as NodeJS.ErrnoException).syscall === 'string';
}
