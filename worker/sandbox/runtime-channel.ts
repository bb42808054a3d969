/**
 * The worker's end of the runtime protocol (runtime/protocol/messages.ts) for one sandbox: a unix
 * socket server that accepts the bootstrap's single connection, then matches results to invokes.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmod, rm } from 'node:fs/promises';
import { readFrames, writeFrame } from '../../runtime/protocol/framing.js';
import type {
  ErrorInfo,
  FunctionSpec,
  HelloMessage,
  InvokeMessage,
  LogMessage,
  ResultMessage,
  RuntimeMessage,
} from '../../runtime/protocol/messages.js';

export class ChannelClosedError extends Error {
  readonly code = 'ChannelClosed';
}

export class InitFailedError extends Error {
  readonly code = 'InitFailed';
  constructor(readonly info: ErrorInfo) {
    super(`${info.type}: ${info.message}`);
  }
}

type Pending = { resolve: (result: ResultMessage) => void; reject: (error: Error) => void };

export class RuntimeChannel {
  private server: Server | undefined;
  private socket: Socket | undefined;
  private readonly pending = new Map<string, Pending>();
  private initWaiter: Pending | undefined;
  private helloWaiter: { resolve: (hello: HelloMessage) => void; reject: (error: Error) => void } | undefined;
  private closed = false;
  private readonly closeListeners: Array<() => void> = [];
  /** Receives the runtime's `log` frames. */
  onLog: (message: LogMessage) => void = () => undefined;

  /** Listens on `path`; resolves once listening (the socket file then exists). */
  async listen(path: string): Promise<void> {
    // Longer paths are silently truncated by the kernel: the bootstrap would never find the socket.
    if (Buffer.byteLength(path) > 107) throw new ChannelClosedError(`socket path is longer than 107 bytes: ${path}`);
    await rm(path, { force: true });
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    // The bootstrap runs as an unprivileged, id-mapped user: it needs write access to connect.
    await chmod(path, 0o666);
  }

  /** Resolves when the bootstrap has connected and said hello. */
  hello(timeoutMs: number): Promise<HelloMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ChannelClosedError(`runtime did not connect within ${timeoutMs} ms`)), timeoutMs);
      this.helloWaiter = {
        resolve: (hello) => (clearTimeout(timer), resolve(hello)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
      if (this.closed) this.helloWaiter.reject(new ChannelClosedError('runtime exited before it connected'));
    });
  }

  async init(fn: FunctionSpec): Promise<number> {
    const socket = this.requireSocket();
    const done = new Promise<ResultMessage>((resolve, reject) => (this.initWaiter = { resolve, reject }));
    writeFrame(socket, { type: 'init', function: fn });
    const result = (await done) as unknown as { durationMs: number };
    return result.durationMs;
  }

  invoke(message: Omit<InvokeMessage, 'type'>): Promise<ResultMessage> {
    const socket = this.requireSocket();
    return new Promise((resolve, reject) => {
      this.pending.set(message.id, { resolve, reject });
      writeFrame(socket, { type: 'invoke', ...message });
    });
  }

  /** Called once when the bootstrap's connection ends (the process exited or was killed). */
  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  close(): void {
    this.socket?.destroy();
    this.server?.close();
    this.markClosed();
  }

  private requireSocket(): Socket {
    if (!this.socket || this.closed) throw new ChannelClosedError('runtime is not connected');
    return this.socket;
  }

  private accept(socket: Socket): void {
    if (this.socket) {
      socket.destroy(); // exactly one runtime per sandbox
      return;
    }
    this.socket = socket;
    this.server?.close(); // no further connections; the accepted one stays open
    socket.setNoDelay(true);
    readFrames(socket, (frame) => this.receive(frame as RuntimeMessage), () => socket.destroy());
    socket.on('close', () => this.markClosed());
    socket.on('error', () => this.markClosed());
  }

  private receive(message: RuntimeMessage): void {
    switch (message.type) {
      case 'hello':
        this.helloWaiter?.resolve(message);
        return;
      case 'initDone':
        this.initWaiter?.resolve(message as unknown as ResultMessage);
        this.initWaiter = undefined;
        return;
      case 'initFailed':
        this.initWaiter?.reject(new InitFailedError(message.error));
        this.initWaiter = undefined;
        return;
      case 'log':
        this.onLog(message);
        return;
      case 'result': {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        waiter?.resolve(message);
        return;
      }
    }
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    const error = new ChannelClosedError('runtime exited');
    this.helloWaiter?.reject(error);
    this.initWaiter?.reject(error);
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    for (const listener of this.closeListeners.splice(0)) listener();
  }
}
