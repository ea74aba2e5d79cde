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

/// Ignores SIGXFSZ so that a write past RLIMIT_FSIZE fails with EFBIG instead of killing us.
int spool_ignore_sigxfsz(void);

/// Asks the kernel to send `sig` to this process when its parent exits.
int spool_set_parent_death_signal(int sig);
/// Names the calling thread (and, for a single-threaded process, the process in
/// /proc/<pid>/comm and ps): at most 15 bytes.
int spool_set_thread_name(const char *name);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC): Glibc hides accept4 from Swift without _GNU_SOURCE.
int spool_accept_cloexec(int listen_fd);

/// pipe2(fds, O_NONBLOCK | O_CLOEXEC), hidden from Swift for the same reason.
int spool_pipe_nonblocking(int fds[2]);

/// pipe2(fds, O_CLOEXEC): the ends a child gets are dup2'ed, so stay blocking for it.
int spool_pipe_cloexec(int fds[2]);

/// posix_spawn of `path` with `in_fd`, `out_fd`, `err_fd` as its standard streams,
/// every other descriptor closed, default signal dispositions, an empty signal
/// mask and a process group of its own. Returns 0 (and the pid) or an errno value.
int spool_spawn(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd, int *pid);

/// A descriptor that polls readable when the child `pid` exits (Linux 5.3+), or -1.
int spool_pidfd_open(int pid);

/// Closes every descriptor from `lowest` up, before an exec: a new master starts
/// with its sockets and standard streams only, not what the old one inherited.
void spool_close_from(int lowest);

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

// MARK: Scoreboard

/// Shared memory, mapped by the master before it forks, in which each worker
/// publishes how it is doing (as Apache httpd's scoreboard): its heartbeat, its
/// open connections, and the progress of each upload it is receiving. Any process
/// reads it without a system call. Board i belongs to the worker holding index i.
enum { SPOOL_BOARD_WORKERS = 1024, SPOOL_BOARD_UPLOADS = 128, SPOOL_ID_BYTES = 32, SPOOL_CLIENT_BUCKETS = 4096, SPOOL_METRICS = 128 };

typedef struct {
    uint64_t seq;                 // odd while the worker writes the slot (a seqlock)
    char id[SPOOL_ID_BYTES];      // upload id, NUL-padded; empty when the slot is free
    uint64_t received;
    uint64_t size;
    uint64_t rate;                // bytes per second over the last half second or so
    uint64_t updated_ms;
} spool_upload_slot;

typedef struct {
    uint64_t heartbeat;           // CLOCK_MONOTONIC ms of the last beat; 0 = not ready
    uint64_t connections;
    uint64_t reserved[6];
    spool_upload_slot uploads[SPOOL_BOARD_UPLOADS];
    uint32_t clients[SPOOL_CLIENT_BUCKETS];   // open connections per client-address bucket
    uint64_t metrics[SPOOL_METRICS];          // counters for GET /metrics (Sources/SpoolSystem/Metrics.swift)
} spool_worker_board;

typedef struct {
    uint64_t received;
    uint64_t size;
    uint64_t rate;
    uint64_t updated_ms;
    int worker_index;
} spool_upload_progress;

/// Maps every board, zeroed. Returns NULL on failure.
spool_worker_board *spool_scoreboard_create(void);
spool_worker_board *spool_scoreboard_board(spool_worker_board *base, int index);
/// Adds to one of a board's metrics (the master's own board counts its events).
void spool_board_metric_add(spool_worker_board *board, int index, uint64_t delta);
/// The master's board, after the workers': retired totals and master-only counters.
spool_worker_board *spool_scoreboard_master(spool_worker_board *base);
/// A dead worker's metrics move into the retired totals, so no sum ever goes back.
void spool_scoreboard_retire_metrics(spool_worker_board *base, int index);
/// Every metric summed over all boards, workers' and retired, as of one instant.
void spool_scoreboard_metric_totals(spool_worker_board *base, uint64_t out[SPOOL_METRICS]);
/// How many workers the master wants now (--workers, TTIN, TTOU), for readiness checks.
void spool_scoreboard_set_wanted(spool_worker_board *base, uint64_t workers);
uint64_t spool_scoreboard_wanted(const spool_worker_board *base);
void spool_board_reset(spool_worker_board *board);

void spool_board_beat(spool_worker_board *board, uint64_t now_ms);
uint64_t spool_board_heartbeat(const spool_worker_board *board);
void spool_board_add_connections(spool_worker_board *board, int64_t delta);
uint64_t spool_board_connections(const spool_worker_board *board);

/// Connections per client address, counted in buckets (a hash of the address).
void spool_board_client_add(spool_worker_board *board, int bucket, int32_t delta);
/// The sum of one bucket over every live board: connections from that address server-wide.
uint32_t spool_scoreboard_client_connections(spool_worker_board *base, int bucket);

/// Slot writes, by the owning worker only.
void spool_slot_claim(spool_worker_board *board, int slot, const char *id, uint64_t received, uint64_t size);
void spool_slot_publish(spool_worker_board *board, int slot, uint64_t received, uint64_t rate, uint64_t now_ms);
void spool_slot_release(spool_worker_board *board, int slot);

/// Looks for a live upload on the boards of workers whose heartbeat is set.
/// Returns 1 and fills `out` when found.
int spool_scoreboard_find(spool_worker_board *base, const char *id, spool_upload_progress *out);
/// Uploads in slots across live boards.
int spool_scoreboard_live_uploads(spool_worker_board *base);

/// Opens a pseudo-terminal leader and writes its follower's path into `name`
/// (Glibc hides posix_openpt and friends from Swift). Returns the leader or -1.
int spool_open_pty(char *name, unsigned long name_size);

/// Starts writing a file range back to disk without waiting (sync_file_range with
/// SYNC_FILE_RANGE_WRITE), so that the fsync at the end of an upload has little left to do.
int spool_start_writeback(int fd, long long offset, long long length);

/// Writes back every dirty file and directory of the file system holding `fd`,
/// and flushes the device's cache (syncfs; Glibc hides it from Swift). Returns 0
/// or -1 with errno set, including for a write-back error since `fd` last asked.
int spool_syncfs(int fd);

/// CLOCK_MONOTONIC in milliseconds: the same clock in every process.
uint64_t spool_monotonic_ms(void);

// MARK: SHA-256 with a state that can be saved (sha256.c)

#include <stddef.h>

/// Plain data: copying the struct copies the hash so far; `h` and `length`
/// (with `buffered` = 0) are all a saved state needs.
typedef struct {
    uint32_t h[8];
    uint64_t length;
    uint8_t buffer[64];
    uint32_t buffered;
    /// Nonzero: never the SHA-NI rounds (tests compare the two).
    int32_t portable;
} spool_sha256;

void spool_sha256_init(spool_sha256 *s);
void spool_sha256_update(spool_sha256 *s, const void *data, size_t count);
/// Writes the digest of what was added so far; `s` can go on.
void spool_sha256_final(const spool_sha256 *s, uint8_t out[32]);

#endif
