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

#include <stdint.h>

// MARK: Worker signals

/// In a worker: QUIT (drain and stop) and USR1 (reopen the log file) only set
/// flags, without SA_RESTART so a blocked accept() returns EINTR at once. ABRT
/// (sent by the master's watchdog) writes one diagnostic line to stderr, then
/// aborts as usual.
int spool_worker_signals_install(void);

/// Blocks (how = 1) or unblocks (how = 0) QUIT and USR1 in the calling thread,
/// so that threads started meanwhile (NIO's) never take them from the accept thread.
int spool_worker_signals_mask(int block);

/// Returns 1 once for each QUIT received since the last call.
int spool_worker_take_quit(void);

/// Returns 1 once for each USR1 received since the last call.
int spool_worker_take_reopen(void);

// MARK: Heartbeats

/// A table of 64-bit heartbeat words in memory shared by the master and every
/// worker it forks (MAP_SHARED | MAP_ANONYMOUS). Returns NULL on failure.
uint64_t *spool_heartbeats_create(int count);

void spool_heartbeat_store(uint64_t *table, int index, uint64_t value);
uint64_t spool_heartbeat_load(const uint64_t *table, int index);

/// CLOCK_MONOTONIC in milliseconds: the same clock in every process.
uint64_t spool_monotonic_ms(void);

#endif
