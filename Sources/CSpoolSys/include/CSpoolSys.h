#ifndef CSPOOLSYS_H
#define CSPOOLSYS_H

// The few system calls that Swift cannot make safely by itself: signal handlers
// must be async-signal-safe C, and prctl is variadic.

/// Installs handlers for the master's signals. Each handler only writes the
/// signal number as one byte to `write_fd` (a non-blocking self-pipe), so the
/// master's loop does all the work outside signal context. Returns 0 or -1 (errno set).
int spool_signals_install_self_pipe(int write_fd);

/// Restores the default disposition of every signal the master handles and
/// unblocks all signals. Called in a child right after fork.
int spool_signals_reset(void);

/// Ignores SIGPIPE so that writes to a closed socket fail with EPIPE instead of killing us.
int spool_ignore_sigpipe(void);

/// Asks the kernel to send `sig` to this process when its parent exits.
int spool_set_parent_death_signal(int sig);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC): Glibc hides accept4 from Swift without _GNU_SOURCE.
int spool_accept_cloexec(int listen_fd);

/// pipe2(fds, O_NONBLOCK | O_CLOEXEC), hidden from Swift for the same reason.
int spool_pipe_nonblocking(int fds[2]);

#endif
