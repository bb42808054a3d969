"""The process inside every python3.11 sandbox.

    /usr/bin/python3.11 -u -B /opt/skiff/runtime/python/bootstrap.py

It speaks the same protocol as the Node.js bootstrap (runtime/protocol/messages.ts): it connects to
the worker's unix socket, says hello and waits. A pooled sandbox is generic until the worker sends
`init`, which sets the function's environment and imports its handler from the task root. After
that it answers every `invoke` with exactly one `result`, matched by id; invocations run in a
thread pool, so a function with concurrency > 1 serves several at once.

Only the standard library may be used: the image holds nothing else. Output that a handler makes
while an invocation runs (print, sys.stdout/sys.stderr, logging) is sent to the worker as `log`
frames tagged with the invocation's id, one per line; other output stays on the container's
stdout/stderr. The bootstrap's own diagnostics go to stderr with a `skiff-bootstrap:` prefix.

The handler contract is AWS Lambda's: `handler(event, context)` named `module.function` (the module
path may use dots or slashes; the function is after the last dot), returning a JSON-serializable
value. A coroutine function is also accepted and run to completion with asyncio.
"""

import contextvars
import importlib
import io
import json
import os
import socket
import sys
import threading
import time
import traceback
import types
from concurrent.futures import ThreadPoolExecutor

RUNTIME_NAME = 'python3.11'
PROTOCOL_VERSION = 1
DEFAULT_SOCKET = '/run/skiff/worker.sock'
DEFAULT_TASK_ROOT = '/var/task'
# The worker creates the socket just before starting the container, so it may not exist yet.
CONNECT_RETRY_S = 0.005
CONNECT_TIMEOUT_S = 5.0
# Output kept per invocation (the worker bounds it again).
LOG_BYTES_PER_INVOCATION = 256 * 1024
# What init's `limits` default to (runtime/protocol/messages.ts DEFAULT_RUNTIME_LIMITS).
DEFAULT_LIMITS = {'maxResultBytes': 6 * 1024 * 1024, 'maxLogLineBytes': 16 * 1024}
# ErrorInfo.type of a result over maxResultBytes (messages.ts RESULT_TOO_LARGE).
RESULT_TOO_LARGE = 'Runtime.ResponseTooLarge'
# Threads of the invocation pool; the worker never sends more calls at once than the function's
# concurrency (at most 1000), so this only bounds a misbehaving worker.
MAX_THREADS = 1000
RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
THIS_FILE = os.path.abspath(__file__)

REAL_STDOUT = sys.stdout
REAL_STDERR = sys.stderr


def warn(text):
    try:
        REAL_STDERR.write('skiff-bootstrap: %s\n' % text)
        REAL_STDERR.flush()
    except Exception:  # noqa: BLE001 - diagnostics must never take the runtime down
        pass


def now_ms():
    return time.time() * 1000.0


# ------------------------------------------------------------------------------------------------
# Errors: what user code raises, as the protocol's ErrorInfo {type, message, stack}.

class RuntimeFailure(Exception):
    """A failure the runtime itself reports, with a Lambda-style type such as Runtime.HandlerNotFound."""

    def __init__(self, error_type, message, stack=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack


def _user_traceback(tb):
    """Drops the bootstrap's own leading frames: the user needs the trace of their code."""
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == THIS_FILE:
        tb = tb.tb_next
    return tb


def stack_lines(error):
    try:
        lines = traceback.format_exception(type(error), error, _user_traceback(error.__traceback__))
        return [line for chunk in lines for line in chunk.rstrip('\n').split('\n')]
    except Exception:  # noqa: BLE001
        return []


def error_info(error):
    """Never raises: a second failure while describing the first would hide it."""
    try:
        if isinstance(error, RuntimeFailure):
            info = {'type': error.error_type, 'message': error.message}
            if error.stack:
                info['stack'] = error.stack
            return info
        return {'type': type(error).__name__, 'message': str(error), 'stack': stack_lines(error)}
    except Exception:  # noqa: BLE001
        return {'type': 'Runtime.UnknownError', 'message': 'the handler failed with an error that cannot be described'}


# ------------------------------------------------------------------------------------------------
# Output capture: sys.stdout/sys.stderr writes made inside an invocation become `log` frames.

def cut_marker(limit):
    """Ends a line cut at `limit` bytes (messages.ts cutMarker writes the same text)."""
    return ' [skiff: line cut at %d bytes]' % limit


def cut_line(text, limit):
    """`text` cut to at most `limit` bytes of UTF-8, never inside a character, marked when cut."""
    if len(text) * 4 <= limit:
        return text
    encoded = text[:limit + 1].encode('utf-8', 'surrogatepass')
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode('utf-8', 'ignore') + cut_marker(limit)


class Invocation:
    """One invoke in flight: its id, deadline, partial output lines and how much it has logged."""

    def __init__(self, message, arrived):
        self.id = message['id']
        self.message = message
        self.arrived = arrived
        self.lock = threading.Lock()
        self.partial = {'stdout': '', 'stderr': ''}
        self.logged_bytes = 0
        self.finished = False


CURRENT = contextvars.ContextVar('skiff_invocation', default=None)


class LogRouter:
    """Turns output of an invocation into log frames, bounded per invocation."""

    def __init__(self, session):
        self.session = session

    def owner(self):
        """The invocation whose output this is: the context's, else the only one running (as on Lambda)."""
        current = CURRENT.get()
        if current is not None:
            return None if current.finished else current
        return self.session.sole_invocation()

    def write(self, invocation, stream, text):
        # An unfinished line keeps at most one character past the limit (enough to know it is cut):
        # a handler writing without newlines holds no more memory here than one line's worth.
        keep = self.session.limits['maxLogLineBytes'] + 1
        lines = []
        with invocation.lock:
            if invocation.finished:
                return False
            partial = invocation.partial[stream]
            start = 0
            while True:
                newline = text.find('\n', start)
                end = len(text) if newline == -1 else newline
                if len(partial) < keep:
                    partial += text[start:min(end, start + keep - len(partial))]
                if newline == -1:
                    break
                lines.append(partial)
                partial = ''
                start = newline + 1
            invocation.partial[stream] = partial
        for line in lines:
            self.emit(invocation, stream, line)
        return True

    def flush(self, invocation):
        """Sends what is left of unfinished lines; called once the handler has returned."""
        with invocation.lock:
            leftovers = [(s, t) for s, t in invocation.partial.items() if t != '']
            invocation.partial = {'stdout': '', 'stderr': ''}
        for stream, text in leftovers:
            self.emit(invocation, stream, text)

    def emit(self, invocation, stream, text):
        text = cut_line(text, self.session.limits['maxLogLineBytes'])
        size = len(text.encode('utf-8', 'surrogatepass'))
        with invocation.lock:
            before = invocation.logged_bytes
            if before >= LOG_BYTES_PER_INVOCATION:
                return
            invocation.logged_bytes = before + size
        if before + size <= LOG_BYTES_PER_INVOCATION:
            self.session.send({'type': 'log', 'id': invocation.id, 'stream': stream, 'text': text, 'at': now_ms()})
        else:
            note = '[skiff: log output of this invocation exceeded %d bytes; the rest is dropped]' % LOG_BYTES_PER_INVOCATION
            self.session.send({'type': 'log', 'id': invocation.id, 'stream': 'stderr', 'text': note, 'at': now_ms()})


class CapturedStream(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr: routes to the worker inside an invocation, else to the real stream."""

    def __init__(self, router, name, real):
        super().__init__()
        self._router = router
        self._name = name
        self._real = real
        self._buffer = CapturedBuffer(self)

    @property
    def encoding(self):
        return 'utf-8'

    @property
    def errors(self):
        return 'backslashreplace'

    @property
    def buffer(self):
        return self._buffer

    @property
    def line_buffering(self):
        return True

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self._real.fileno()

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError('write() argument must be str, not %s' % type(text).__name__)
        invocation = self._router.owner()
        if invocation is None or not self._router.write(invocation, self._name, text):
            self._real.write(text)
        return len(text)

    def flush(self):
        self._real.flush()


class CapturedBuffer(io.RawIOBase):
    """`sys.stdout.buffer` for code that writes bytes: decoded as UTF-8 and routed like text."""

    def __init__(self, text_stream):
        super().__init__()
        self._text = text_stream

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        self._text.write(data.decode('utf-8', 'backslashreplace'))
        return len(data)

    def flush(self):
        self._text.flush()


def install_logging_handler():
    """As on Lambda, the root logger has a handler: logger.info() shows once its level allows it."""
    import logging

    class InvocationLogHandler(logging.Handler):
        def emit(self, record):
            try:
                text = self.format(record)
                stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
                stream.write(text + '\n')
            except Exception:  # noqa: BLE001
                self.handleError(record)

    class RequestIdFilter(logging.Filter):
        def filter(self, record):
            current = CURRENT.get()
            record.aws_request_id = current.id if current is not None else ''
            return True

    formatter = logging.Formatter('[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s', '%Y-%m-%dT%H:%M:%S')
    formatter.converter = time.gmtime
    handler = InvocationLogHandler()
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(handler)


# ------------------------------------------------------------------------------------------------
# The Lambda view of the function: environment and context.

class LambdaContext:
    """The `context` argument, with the names of Lambda's Python runtime."""

    def __init__(self, identity, message):
        self.aws_request_id = message['id']
        self.function_name = identity['function_name']
        self.function_version = identity['function_version']
        self.memory_limit_in_mb = identity['memory_limit_in_mb']
        self.invoked_function_arn = identity['invoked_function_arn']
        self.log_group_name = identity['log_group_name']
        self.log_stream_name = identity['log_stream_name']
        self.traceparent = message.get('traceparent')
        self.identity = None
        self.client_context = None
        self._deadline_ms = message['deadlineMs']

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - now_ms()))

    def __repr__(self):
        return '<LambdaContext aws_request_id=%r function_name=%r>' % (self.aws_request_id, self.function_name)


def function_identity(spec):
    version = str(spec['version'])
    day = time.strftime('%Y/%m/%d', time.gmtime())
    return {
        'function_name': spec['name'],
        'function_version': version,
        # A string, as on Lambda (and as memoryLimitInMB in the Node.js runtime).
        'memory_limit_in_mb': str(spec['memoryMb']),
        'invoked_function_arn': 'arn:aws:lambda:local:000000000000:function:%s' % spec['name'],
        'log_group_name': '/skiff/%s' % spec['name'],
        'log_stream_name': '%s/[%s]%s' % (day, version, os.urandom(16).hex()),
    }


def function_environment(spec, identity, task_root):
    """The function's own variables plus Lambda's reserved ones, which win; TZ is only a default."""
    env = {'TZ': os.environ.get('TZ', 'UTC')}
    env.update(spec['env'])
    env.update({
        'AWS_EXECUTION_ENV': 'AWS_Lambda_python3.11',
        'AWS_LAMBDA_FUNCTION_NAME': identity['function_name'],
        'AWS_LAMBDA_FUNCTION_VERSION': identity['function_version'],
        'AWS_LAMBDA_FUNCTION_MEMORY_SIZE': identity['memory_limit_in_mb'],
        'AWS_LAMBDA_LOG_GROUP_NAME': identity['log_group_name'],
        'AWS_LAMBDA_LOG_STREAM_NAME': identity['log_stream_name'],
        'LAMBDA_TASK_ROOT': task_root,
        'LAMBDA_RUNTIME_DIR': RUNTIME_DIR,
        '_HANDLER': spec['handler'],
    })
    return env


# ------------------------------------------------------------------------------------------------
# Loading the handler.

def parse_handler(handler):
    """`pkg/module.function` or `pkg.module.function` → ('pkg.module', 'function')."""
    module_path, dot, function_name = handler.rpartition('.')
    malformed = RuntimeFailure('Runtime.MalformedHandlerName', "Bad handler '%s': expected 'module.function'" % handler)
    if dot == '' or module_path == '' or function_name == '':
        raise malformed
    if module_path.startswith(('/', '.')) or module_path.endswith(('/', '.')) or '..' in module_path or '//' in module_path:
        raise RuntimeFailure('Runtime.MalformedHandlerName', "Bad handler '%s': the module must be a path inside the task root" % handler)
    module_name = module_path.replace('/', '.')
    if not all(part.isidentifier() for part in module_name.split('.')) or not function_name.isidentifier():
        raise malformed
    return module_name, function_name


def load_handler(handler):
    module_name, function_name = parse_handler(handler)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RuntimeFailure('Runtime.ImportModuleError', "Unable to import module '%s': %s" % (module_name, error), stack_lines(error)) from error
    function = getattr(module, function_name, None)
    if function is None:
        raise RuntimeFailure('Runtime.HandlerNotFound', "Handler '%s' missing on module '%s'" % (function_name, module_name))
    if not callable(function):
        raise RuntimeFailure('Runtime.HandlerNotFound', "Handler '%s' on module '%s' is not a function" % (function_name, module_name))
    return function


# ------------------------------------------------------------------------------------------------
# Results.

def _json_default(value):
    # Lambda's Python runtime turns Decimals (from DynamoDB, say) into numbers.
    import decimal
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError('Object of type %s is not JSON serializable' % type(value).__name__)


def encode(message):
    """One frame. allow_nan=False: NaN and Infinity are not JSON, and the worker's parser would reject them."""
    return (json.dumps(message, default=_json_default, allow_nan=False, separators=(',', ':')) + '\n').encode('utf-8')


def run_handler(handler, event, context):
    value = handler(event, context)
    if isinstance(value, types.CoroutineType):
        # An `async def` handler: run on an event loop of this invocation's own (asyncio is loaded only then).
        import asyncio
        value = asyncio.run(value)
    return value


# ------------------------------------------------------------------------------------------------
# The session: one connection to the worker, and the single function this sandbox is specialized for.

class Session:
    def __init__(self, sock, task_root):
        self.sock = sock
        self.task_root = task_root
        self.send_lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.in_flight = {}
        # None until init; then ('ok', handler, identity) or ('failed',).
        self.loaded = None
        # Set by init: the worker's bounds on what this sandbox sends.
        self.limits = dict(DEFAULT_LIMITS)
        self.pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix='invoke')
        self.router = LogRouter(self)

    # -- transport

    def send_bytes(self, data):
        with self.send_lock:
            try:
                self.sock.sendall(data)
            except OSError as error:
                # The worker went away; the reader sees the close and ends the process.
                warn('runtime socket: %s' % error)

    def send(self, message):
        self.send_bytes(encode(message))

    def serve(self):
        self.send({'type': 'hello', 'protocol': PROTOCOL_VERSION, 'runtime': RUNTIME_NAME, 'pid': os.getpid()})
        buffered = b''
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError as error:
                warn('runtime socket: %s' % error)
                chunk = b''
            if not chunk:
                # A closed socket means the worker is done with this sandbox (or gone).
                exit_now(0)
            buffered += chunk
            if b'\n' not in chunk:
                continue  # a large frame still arriving: split only once its end is here
            *lines, buffered = buffered.split(b'\n')
            for line in lines:
                if line.strip() == b'':
                    continue
                try:
                    frame = json.loads(line)
                except ValueError as error:
                    warn('malformed frame on runtime socket: %s' % error)
                    continue
                self.on_frame(frame)

    # -- frames

    def on_frame(self, frame):
        kind, detail = classify(frame)
        if kind == 'init':
            spec, limits = detail
            if self.loaded is None and limits is not None:
                self.limits = limits
            self.init(spec)
        elif kind == 'badInit':
            warn('malformed init: %s' % detail)
            self.init(None, RuntimeFailure('Runtime.InvalidInit', detail))
        elif kind == 'invoke':
            self.invoke(detail)
        elif kind == 'badInvoke':
            invoke_id, reason = detail
            warn('malformed invoke %s: %s' % (invoke_id, reason))
            invocation = self.track({'id': invoke_id})
            if invocation is not None:
                self.answer_error(invocation, {'type': 'Runtime.InvalidInvoke', 'message': reason})
        else:
            warn('ignoring a frame this runtime does not understand: %s' % json.dumps(frame)[:500])

    def init(self, spec, problem=None):
        if self.loaded is not None:
            warn('ignoring a second init: a sandbox is specialized only once')
            return
        if spec is None:
            self.loaded = ('failed',)
            self.send({'type': 'initFailed', 'error': error_info(problem)})
            return
        # Runs on the reader thread: invokes pipelined behind the init wait in the socket until it is done.
        started = time.perf_counter()
        try:
            identity = function_identity(spec)
            os.environ.update(function_environment(spec, identity, self.task_root))
            if hasattr(time, 'tzset'):
                time.tzset()
            os.chdir(self.task_root)
            # The code's own directory: its modules and the packages vendored next to them import.
            if self.task_root not in sys.path:
                sys.path.insert(0, self.task_root)
            handler = load_handler(spec['handler'])
        except SystemExit as exited:
            self.loaded = ('failed',)
            self.send({'type': 'initFailed', 'error': {'type': 'Runtime.ExitError', 'message': 'the module called sys.exit(%r) while loading' % (exited.code,)}})
            exit_now(exited_status(exited))
        except BaseException as error:  # noqa: BLE001 - whatever the module raised is its init failure
            self.loaded = ('failed',)
            self.send({'type': 'initFailed', 'error': error_info(error)})
            return
        self.loaded = ('ok', handler, identity)
        self.send({'type': 'initDone', 'durationMs': (time.perf_counter() - started) * 1000.0})

    def track(self, message):
        """Registers an invocation; a duplicate id could not be told apart in the results, so it is refused."""
        with self.state_lock:
            if message['id'] in self.in_flight:
                warn('ignoring invoke %s: an invocation with that id is already running' % message['id'])
                return None
            invocation = Invocation(message, time.perf_counter())
            self.in_flight[invocation.id] = invocation
            return invocation

    def sole_invocation(self):
        with self.state_lock:
            if len(self.in_flight) != 1:
                return None
            return next(iter(self.in_flight.values()))

    def invoke(self, message):
        invocation = self.track(message)
        if invocation is None:
            return
        if self.loaded is None:
            self.answer_error(invocation, {'type': 'Runtime.NotInitialized', 'message': 'invoke received before init'})
            return
        if self.loaded[0] != 'ok':
            self.answer_error(invocation, {'type': 'Runtime.InitError', 'message': 'the function failed to initialize'})
            return
        _, handler, identity = self.loaded
        # A fresh copy of the context per invocation, so the id never leaks into the next one on the thread.
        self.pool.submit(contextvars.copy_context().run, self.run_invocation, invocation, handler, identity)

    def run_invocation(self, invocation, handler, identity):
        CURRENT.set(invocation)
        message = invocation.message
        try:
            value = run_handler(handler, message.get('event'), LambdaContext(identity, message))
        except SystemExit as exited:
            # As process.exit() in Node.js: the process ends, the worker replaces the sandbox.
            self.router.flush(invocation)
            self.fail_all({'type': 'Runtime.ExitError', 'message': 'the handler called sys.exit(%r)' % (exited.code,)})
            exit_now(exited_status(exited))
        except BaseException as error:  # noqa: BLE001 - every failure of user code is the invocation's
            self.router.flush(invocation)
            self.answer_error(invocation, error_info(error))
            return
        self.router.flush(invocation)
        self.answer_value(invocation, value)

    def settle(self, invocation):
        """Duration since the invoke arrived, or None if it was already answered."""
        with self.state_lock:
            if self.in_flight.get(invocation.id) is not invocation:
                return None
            del self.in_flight[invocation.id]
        with invocation.lock:
            invocation.finished = True
        return (time.perf_counter() - invocation.arrived) * 1000.0

    def answer_value(self, invocation, value):
        duration = self.settle(invocation)
        if duration is None:
            return
        try:
            # ensure_ascii (the default): one byte a character, so the length is the size in bytes.
            value_json = json.dumps(value, default=_json_default, allow_nan=False, separators=(',', ':'))
        except (TypeError, ValueError, RecursionError, OverflowError) as error:
            # Encoded before anything is written: nothing half-sent, and the failure is this invocation's.
            info = {'type': 'Runtime.SerializationError', 'message': 'Unable to marshal response: %s' % error}
            self.send({'type': 'result', 'id': invocation.id, 'ok': False, 'error': info, 'durationMs': duration})
            return
        limit = self.limits['maxResultBytes']
        if len(value_json) > limit:
            # Refused here, where it is cheap: a result the worker would refuse never crosses the socket.
            info = {'type': RESULT_TOO_LARGE, 'message': "the function's result is %d bytes of JSON, over the limit of %d bytes" % (len(value_json), limit)}
            self.send({'type': 'result', 'id': invocation.id, 'ok': False, 'error': info, 'durationMs': duration})
            return
        frame = '{"type":"result","id":%s,"ok":true,"value":%s,"durationMs":%s}\n' % (json.dumps(invocation.id), value_json, json.dumps(duration))
        self.send_bytes(frame.encode('ascii'))

    def answer_error(self, invocation, info):
        duration = self.settle(invocation)
        if duration is None:
            return
        self.send({'type': 'result', 'id': invocation.id, 'ok': False, 'error': info, 'durationMs': duration})

    def fail_all(self, info):
        with self.state_lock:
            running = list(self.in_flight.values())
        for invocation in running:
            self.answer_error(invocation, info)


# ------------------------------------------------------------------------------------------------
# Frame checks (as runtime/nodejs/validate.ts): a version skew or a worker bug gets a clear answer.

def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value not in (float('inf'), float('-inf'))


def function_spec_problem(spec):
    if not isinstance(spec, dict):
        return 'function is missing'
    if not isinstance(spec.get('name'), str) or spec.get('name') == '':
        return 'function.name must be a non-empty string'
    if not isinstance(spec.get('handler'), str):
        return 'function.handler must be a string'
    for key in ('version', 'memoryMb', 'timeoutMs'):
        if not _is_number(spec.get(key)):
            return 'function.%s must be a number' % key
    env = spec.get('env')
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return 'function.env must map names to strings'
    return None


def limits_problem(limits):
    if limits is None:
        return None
    if not isinstance(limits, dict):
        return 'limits must be an object'
    for key in ('maxResultBytes', 'maxLogLineBytes'):
        if not _is_number(limits.get(key)) or limits.get(key) < 1:
            return 'limits.%s must be a positive number' % key
    return None


def classify(frame):
    if not isinstance(frame, dict):
        return 'unknown', None
    if frame.get('type') == 'init':
        problem = function_spec_problem(frame.get('function')) or limits_problem(frame.get('limits'))
        if problem is not None:
            return 'badInit', problem
        limits = frame.get('limits')
        if limits is not None:
            limits = {'maxResultBytes': int(limits['maxResultBytes']), 'maxLogLineBytes': int(limits['maxLogLineBytes'])}
        return 'init', (frame['function'], limits)
    invoke_id = frame.get('id')
    if frame.get('type') == 'invoke' and isinstance(invoke_id, str) and invoke_id != '':
        if not _is_number(frame.get('deadlineMs')):
            return 'badInvoke', (invoke_id, 'deadlineMs must be a number')
        traceparent = frame.get('traceparent')
        if traceparent is not None and not isinstance(traceparent, str):
            return 'badInvoke', (invoke_id, 'traceparent must be a string')
        message = {'id': invoke_id, 'event': frame.get('event'), 'deadlineMs': frame['deadlineMs']}
        if traceparent is not None:
            message['traceparent'] = traceparent
        return 'invoke', message
    return 'unknown', None


# ------------------------------------------------------------------------------------------------
# Process.

def exited_status(exited):
    code = exited.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def exit_now(code):
    """Ends the process without waiting for handler threads that may never return."""
    for stream in (REAL_STDOUT, REAL_STDERR):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


def connect(path):
    give_up_at = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= give_up_at:
                raise
            time.sleep(CONNECT_RETRY_S)


def main():
    # The overrides exist for tests on the host; inside the container the defaults apply.
    socket_path = os.environ.get('SKIFF_RUNTIME_SOCKET') or DEFAULT_SOCKET
    task_root = os.path.abspath(os.environ.get('SKIFF_TASK_ROOT') or DEFAULT_TASK_ROOT)
    # `python bootstrap.py` puts this directory first on sys.path; user modules must not meet ours.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != RUNTIME_DIR]
    try:
        sock = connect(socket_path)
    except OSError as error:
        warn('cannot reach the worker at %s: %s' % (socket_path, error))
        exit_now(1)
    session = Session(sock, task_root)
    router = session.router
    sys.stdout = CapturedStream(router, 'stdout', REAL_STDOUT)
    sys.stderr = CapturedStream(router, 'stderr', REAL_STDERR)
    install_logging_handler()
    try:
        session.serve()
    except BaseException as error:  # noqa: BLE001 - a bug here must not leave calls waiting forever
        warn('bootstrap failure: %s' % ''.join(traceback.format_exception(type(error), error, error.__traceback__)))
        session.fail_all(error_info(error))
        exit_now(1)


if __name__ == '__main__':
    main()
