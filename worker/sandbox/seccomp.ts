/**
 * The seccomp filter of every sandbox, as the OCI `linux.seccomp` object runc loads (with
 * libseccomp) just before it executes the container's process.
 *
 * An allow-list: any system call not named here fails with EPERM. The list is Docker's default
 * profile (github.com/moby/profiles, seccomp/default.json) for a container with NO capabilities:
 * Docker's base allow rule, its argument-filtered rules for `socket`, `personality` and `clone`, the
 * `clone3` ENOSYS rule and its per-architecture additions, and none of the rules Docker only adds
 * when a capability is granted (mount, unshare, setns, bpf, perf_event_open, the module calls,
 * reboot, syslog, chroot, acct, quotactl, ... need CAP_SYS_ADMIN and friends there, so they are
 * never allowed here). Skiff is stricter than Docker in two places, neither of which Node.js uses:
 *  - ptrace, process_vm_readv and process_vm_writev are denied (Docker allows them on kernels
 *    4.8 and later);
 *  - modify_ldt is denied (Docker allows it on x86).
 *
 * Facts this relies on:
 *  - runc ignores names its libseccomp does not know (a newer syscall than libseccomp 2.5.4), and
 *    makes any syscall newer than the newest one it knows answer ENOSYS, so C libraries fall back.
 *  - io_uring_* are not allowed (Docker removed them in 2023): libuv (Node.js) falls back to its
 *    thread pool when io_uring_setup fails.
 *  - glibc's pthread_create and fork try clone3 first; clone3 answers ENOSYS (its flags are in a
 *    struct seccomp cannot read), so glibc falls back to clone, whose flags are checked here.
 */

export type SeccompAction = 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO' | 'SCMP_ACT_KILL_PROCESS' | 'SCMP_ACT_LOG';
export type SeccompOp = 'SCMP_CMP_EQ' | 'SCMP_CMP_NE' | 'SCMP_CMP_LT' | 'SCMP_CMP_LE' | 'SCMP_CMP_GT' | 'SCMP_CMP_GE' | 'SCMP_CMP_MASKED_EQ';

export interface SeccompArg {
  index: number;
  /** For SCMP_CMP_MASKED_EQ: the mask. */
  value: number;
  /** For SCMP_CMP_MASKED_EQ: what `arg & value` must equal. */
  valueTwo?: number;
  op: SeccompOp;
}

export interface SeccompRule {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  /** Every condition must hold (AND). Several rules for one name are alternatives (OR). */
  args?: SeccompArg[];
}

/** The OCI runtime spec's `linux.seccomp`. */
export interface SeccompProfile {
  defaultAction: SeccompAction;
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

export const EPERM = 1;
export const ENOSYS = 38;

/**
 * CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
 * CLONE_NEWNET = 0x7e020000 = 2114060288: clone is allowed only when none of these bits is set.
 * (CLONE_NEWTIME, 0x80, is CSIGNAL's range in clone's flags: only clone3 and unshare take it.)
 */
export const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

/**
 * The native architecture and its compatibility modes, for x86-64 and arm64 hosts. A syscall made
 * in an architecture not listed here is refused whatever its number.
 */
export const SECCOMP_ARCHITECTURES = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];

/**
 * System calls that escape tools and kernel exploits reach for, denied by the filter: no rule
 * allows them under any argument. Documentation and a test target; the filter is the allow-list.
 */
export const DENIED_SYSCALLS = [
  // file systems and the root
  'mount', 'umount', 'umount2', 'pivot_root', 'chroot', 'move_mount', 'open_tree', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr',
  'open_by_handle_at', 'quotactl', 'quotactl_fd',
  // namespaces
  'unshare', 'setns',
  // other processes
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd', 'process_madvise',
  // the kernel's key store (containers share the worker's session keyring: runc --no-new-keyring)
  'keyctl', 'add_key', 'request_key',
  // kernel code and state
  'bpf', 'perf_event_open', 'init_module', 'finit_module', 'delete_module', 'kexec_load', 'kexec_file_load',
  'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register', 'lookup_dcookie', 'fanotify_init', 'modify_ldt',
  'iopl', 'ioperm', 'vm86', 'vm86old', 'uselib', 'nfsservctl', '_sysctl',
  // the machine
  'acct', 'swapon', 'swapoff', 'reboot', 'syslog', 'sethostname', 'setdomainname', 'settimeofday', 'stime', 'clock_settime',
  'clock_settime64', 'vhangup', 'mbind', 'set_mempolicy', 'get_mempolicy', 'move_pages', 'migrate_pages',
];

/** Docker's base allow rule (moby/profiles seccomp/default.json), unchanged. */
const ALLOWED = [
  'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'cachestat', 'capget', 'capset', 'chdir', 'chmod', 'chown', 'chown32',
  'clock_adjtime', 'clock_adjtime64', 'clock_getres', 'clock_getres_time64', 'clock_gettime', 'clock_gettime64', 'clock_nanosleep',
  'clock_nanosleep_time64', 'close', 'close_range', 'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3', 'epoll_create',
  'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old', 'eventfd', 'eventfd2',
  'execve', 'execveat', 'exit', 'exit_group', 'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64', 'fallocate', 'fanotify_mark',
  'fchdir', 'fchmod', 'fchmodat', 'fchmodat2', 'fchown', 'fchown32', 'fchownat', 'fcntl', 'fcntl64', 'fdatasync', 'fgetxattr',
  'flistxattr', 'flock', 'fork', 'fremovexattr', 'fsetxattr', 'fstat', 'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64', 'fsync',
  'ftruncate', 'ftruncate64', 'futex', 'futex_requeue', 'futex_time64', 'futex_wait', 'futex_waitv', 'futex_wake', 'futimesat',
  'getcpu', 'getcwd', 'getdents', 'getdents64', 'getegid', 'getegid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getgroups',
  'getgroups32', 'getitimer', 'getpeername', 'getpgid', 'getpgrp', 'getpid', 'getppid', 'getpriority', 'getrandom', 'getresgid',
  'getresgid32', 'getresuid', 'getresuid32', 'getrlimit', 'get_robust_list', 'getrusage', 'getsid', 'getsockname', 'getsockopt',
  'get_thread_area', 'gettid', 'gettimeofday', 'getuid', 'getuid32', 'getxattr', 'getxattrat', 'inotify_add_watch', 'inotify_init',
  'inotify_init1', 'inotify_rm_watch', 'io_cancel', 'ioctl', 'io_destroy', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64',
  'ioprio_get', 'ioprio_set', 'io_setup', 'io_submit', 'ipc', 'kill', 'landlock_add_rule', 'landlock_create_ruleset',
  'landlock_restrict_self', 'lchown', 'lchown32', 'lgetxattr', 'link', 'linkat', 'listen', 'listmount', 'listxattr', 'listxattrat',
  'llistxattr', '_llseek', 'lremovexattr', 'lseek', 'lsetxattr', 'lstat', 'lstat64', 'madvise', 'map_shadow_stack', 'membarrier',
  'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat', 'mlock', 'mlock2', 'mlockall', 'mmap', 'mmap2',
  'mprotect', 'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64', 'mq_timedsend',
  'mq_timedsend_time64', 'mq_unlink', 'mremap', 'mseal', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock', 'munlockall',
  'munmap', 'name_to_handle_at', 'nanosleep', 'newfstatat', '_newselect', 'open', 'openat', 'openat2', 'pause', 'pidfd_open',
  'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'poll', 'ppoll', 'ppoll_time64', 'prctl',
  'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease', 'pselect6', 'pselect6_time64', 'pwrite64', 'pwritev', 'pwritev2',
  'read', 'readahead', 'readlink', 'readlinkat', 'readv', 'recv', 'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg',
  'remap_file_pages', 'removexattr', 'removexattrat', 'rename', 'renameat', 'renameat2', 'restart_syscall', 'riscv_hwprobe', 'rmdir',
  'rseq', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend', 'rt_sigtimedwait',
  'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo', 'sched_getaffinity', 'sched_getattr', 'sched_getparam', 'sched_get_priority_max',
  'sched_get_priority_min', 'sched_getscheduler', 'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_setaffinity',
  'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'select', 'semctl', 'semget', 'semop',
  'semtimedop', 'semtimedop_time64', 'send', 'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg', 'sendto', 'setfsgid', 'setfsgid32',
  'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32', 'setitimer', 'setpgid', 'setpriority', 'setregid',
  'setregid32', 'setresgid', 'setresgid32', 'setresuid', 'setresuid32', 'setreuid', 'setreuid32', 'setrlimit', 'set_robust_list',
  'setsid', 'setsockopt', 'set_thread_area', 'set_tid_address', 'setuid', 'setuid32', 'setxattr', 'setxattrat', 'shmat', 'shmctl',
  'shmdt', 'shmget', 'shutdown', 'sigaltstack', 'signalfd', 'signalfd4', 'sigprocmask', 'sigreturn', 'socketcall', 'socketpair',
  'splice', 'stat', 'stat64', 'statfs', 'statfs64', 'statmount', 'statx', 'symlink', 'symlinkat', 'sync', 'sync_file_range', 'syncfs',
  'sysinfo', 'tee', 'tgkill', 'time', 'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64',
  'timer_settime', 'timer_settime64', 'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime',
  'timerfd_settime64', 'times', 'tkill', 'truncate', 'truncate64', 'ugetrlimit', 'umask', 'uname', 'unlink', 'unlinkat', 'uretprobe',
  'utime', 'utimensat', 'utimensat_time64', 'utimes', 'vfork', 'vmsplice', 'wait4', 'waitid', 'waitpid', 'write', 'writev',
];

/** Docker's per-architecture additions for arm/arm64 and x86-64 (modify_ldt left out, see above). */
const ALLOWED_ARCH_SPECIFIC = ['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls', 'arch_prctl'];

/**
 * Address families socket() may create, exactly Docker's: every family below AF_DECnet (12), then
 * these (netlink 16, packet 17, ...). Left out as in Docker: 12, 19, 20, 23, 25, 34, 37, AF_ALG (38),
 * AF_VSOCK (40) and everything above 45. Raw and packet sockets still need CAP_NET_RAW, which no
 * sandbox has.
 */
const SOCKET_FAMILIES_EQ = [13, 14, 15, 16, 17, 18, 21, 22, 24, 26, 27, 28, 29, 30, 31, 32, 33, 35, 36, 39, 41, 42, 43, 44, 45];

/** personality(2) values that change nothing dangerous: PER_LINUX, PER_LINUX32, UNAME26 variants, and the query. */
const SAFE_PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** A fresh copy of the sandbox filter (callers may serialize or change it freely). */
export function seccompProfile(): SeccompProfile {
  const one = (names: string[], arg: SeccompArg): SeccompRule => ({ names, action: 'SCMP_ACT_ALLOW', args: [arg] });
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: [...SECCOMP_ARCHITECTURES],
    syscalls: [
      { names: [...ALLOWED, ...ALLOWED_ARCH_SPECIFIC], action: 'SCMP_ACT_ALLOW' },
      one(['socket'], { index: 0, value: 12, op: 'SCMP_CMP_LT' }),
      ...SOCKET_FAMILIES_EQ.map((family) => one(['socket'], { index: 0, value: family, op: 'SCMP_CMP_EQ' })),
      ...SAFE_PERSONALITIES.map((persona) => one(['personality'], { index: 0, value: persona, op: 'SCMP_CMP_EQ' })),
      // fork and threads, never a new namespace: (flags & CLONE_NAMESPACE_FLAGS) == 0. x86 and arm
      // take the flags first (s390, which takes them second, is not a supported architecture).
      one(['clone'], { index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }),
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ],
  };
}
