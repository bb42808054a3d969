/**
 * Where a command writes: results on stdout (JSON with --json), progress and errors on stderr.
 * Progress is a live, rewritten line on a terminal and a few plain lines otherwise.
 */
import type { Writable } from 'node:stream';

export interface Streams {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean; columns?: number };
}

export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  private readonly streams: Streams;

  constructor(streams: Streams, options: { json: boolean; quiet: boolean }) {
    this.streams = streams;
    this.json = options.json;
    this.quiet = options.quiet;
  }

  /** A line of a result, on stdout. */
  line(text = ''): void {
    this.streams.stdout.write(`${text}\n`);
  }

  /** A value as one line of JSON on stdout (the --json output). */
  value(value: unknown): void {
    this.streams.stdout.write(`${JSON.stringify(value)}\n`);
  }

  /** A message for the person, on stderr (errors, hints). */
  note(text: string): void {
    this.streams.stderr.write(`${text}\n`);
  }

  /** Rows aligned in columns, the first row a header. */
  table(rows: string[][]): void {
    const widths: number[] = [];
    for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
    for (const row of rows)
      this.line(
        row
          .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
          .join('  ')
          .trimEnd(),
      );
  }

  progress(): Progress {
    return new Progress(this.streams.stderr, this.quiet);
  }
}

/** Progress on stderr: `update` redraws a live line (terminals only, throttled), `done` prints a lasting one. */
export class Progress {
  private readonly stream: Streams['stderr'];
  private readonly live: boolean;
  private readonly quiet: boolean;
  private lastDraw = 0;
  private drawn = false;

  constructor(stream: Streams['stderr'], quiet: boolean) {
    this.stream = stream;
    this.quiet = quiet;
    this.live = !quiet && stream.isTTY === true;
  }

  update(text: string, force = false): void {
    if (!this.live) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    this.stream.write(`\r\x1b[K${text.length > width ? text.slice(0, width - 1) + '…' : text}`);
    this.drawn = true;
  }

  done(text: string): void {
    this.clear();
    if (!this.quiet) this.stream.write(`${text}\n`);
  }

  clear(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
