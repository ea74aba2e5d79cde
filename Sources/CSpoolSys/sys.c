#define _GNU_SOURCE
#include "CSpoolSys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile int self_pipe_write_fd = -1;

static const int handled_signals[] = {
    SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGWINCH,
};
#define HANDLED_COUNT (sizeof(handled_signals) / sizeof(handled_signals[0]))

static void on_signal(int sig) {
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    // A full pipe means the loop already has bytes to wake up for; dropping is fine.
    (void)write(self_pipe_write_fd, &byte, 1);
    errno = saved;
}

int spool_signals_install_self_pipe(int write_fd) {
    self_pipe_write_fd = write_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (unsigned i = 0; i < HANDLED_COUNT; i++) {
        if (sigaction(handled_signals[i], &sa, NULL) != 0) return -1;
    }
    // A parent may have started us with signals blocked (the mask survives exec):
    // unblock ours, or TERM would never arrive.
    sigset_t mine;
    sigemptyset(&mine);
    for (unsigned i = 0; i < HANDLED_COUNT; i++) sigaddset(&mine, handled_signals[i]);
    if (sigprocmask(SIG_UNBLOCK, &mine, NULL) != 0) return -1;
    if (spool_ignore_sigxfsz() != 0) return -1;
    return spool_ignore_sigpipe();
}

int spool_signals_reset(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (unsigned i = 0; i < HANDLED_COUNT; i++) {
        if (sigaction(handled_signals[i], &sa, NULL) != 0) return -1;
    }
    sigset_t all;
    sigemptyset(&all);
    return sigprocmask(SIG_SETMASK, &all, NULL);
}

int spool_ignore_sigpipe(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGPIPE, &sa, NULL);
}

int spool_ignore_sigxfsz(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGXFSZ, &sa, NULL);
}

int spool_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0);
}

int spool_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

int spool_accept_cloexec(int listen_fd) {
    return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

int spool_pipe_nonblocking(int fds[2]) {
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

int spool_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int spool_spawn(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd, int *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    // Listening sockets, the database, other connections: none of the hook's business.
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    // A signal mask or an ignored SIGPIPE is ours, not the hook's; its own group,
    // so that a timeout kills whatever it started too.
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    pid_t child = 0;
    if (rc == 0) rc = posix_spawn(&child, path, &actions, &attr, argv, envp);
    if (rc == 0) *pid = (int)child;
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

int spool_pidfd_open(int pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

void spool_close_from(int lowest) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1 << 20) max = 1 << 20;
    for (long fd = lowest; fd < max; fd++) close((int)fd);
}

// MARK: Worker signals

static volatile sig_atomic_t worker_quit = 0;
static volatile sig_atomic_t worker_reopen = 0;
static char abort_line[128];
static size_t abort_line_length = 0;

static void on_worker_signal(int sig) {
    if (sig == SIGQUIT) worker_quit = 1;
    if (sig == SIGUSR1) worker_reopen = 1;
}

static void on_worker_abort(int sig) {
    (void)sig;
    (void)write(STDERR_FILENO, abort_line, abort_line_length);
    signal(SIGABRT, SIG_DFL);
    raise(SIGABRT);
}

int spool_worker_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_worker_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: interrupt accept()
    if (sigaction(SIGQUIT, &sa, NULL) != 0) return -1;
    if (sigaction(SIGUSR1, &sa, NULL) != 0) return -1;

    int n = snprintf(abort_line, sizeof(abort_line),
                     "spoold[%d] critical worker: aborting (SIGABRT: watchdog timeout or a failed check)\n",
                     (int)getpid());
    abort_line_length = n > 0 && (size_t)n < sizeof(abort_line) ? (size_t)n : 0;
    sa.sa_handler = on_worker_abort;
    sa.sa_flags = SA_RESETHAND;
    return sigaction(SIGABRT, &sa, NULL);
}

int spool_worker_signals_mask(int block) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    return pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

int spool_worker_take_quit(void) {
    if (!worker_quit) return 0;
    worker_quit = 0;
    return 1;
}

int spool_worker_take_reopen(void) {
    if (!worker_reopen) return 0;
    worker_reopen = 0;
    return 1;
}

// MARK: Scoreboard

spool_worker_board *spool_scoreboard_create(void) {
    // One board more than workers can have: the master's (wanted workers), after theirs.
    size_t bytes = sizeof(spool_worker_board) * (SPOOL_BOARD_WORKERS + 1);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : (spool_worker_board *)p;
}

spool_worker_board *spool_scoreboard_board(spool_worker_board *base, int index) {
    return &base[index];
}

void spool_board_metric_add(spool_worker_board *board, int index, uint64_t delta) {
    if (index < 0 || index >= SPOOL_METRICS) return;
    __atomic_fetch_add(&board->metrics[index], delta, __ATOMIC_RELAXED);
}

spool_worker_board *spool_scoreboard_master(spool_worker_board *base) {
    return &base[SPOOL_BOARD_WORKERS];
}

// reserved[1] of the master's board is a sequence number, odd while a dead worker's
// metrics move: a reader that saw it change reads again, so a sum is never taken
// with the moved values counted twice or not at all.
void spool_scoreboard_retire_metrics(spool_worker_board *base, int index) {
    spool_worker_board *master = &base[SPOOL_BOARD_WORKERS], *board = &base[index];
    __atomic_fetch_add(&master->reserved[1], 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < SPOOL_METRICS; i++) {
        uint64_t value = __atomic_exchange_n(&board->metrics[i], 0, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&master->metrics[i], value, __ATOMIC_SEQ_CST);
    }
    __atomic_fetch_add(&master->reserved[1], 1, __ATOMIC_SEQ_CST);
}

void spool_scoreboard_metric_totals(spool_worker_board *base, uint64_t out[SPOOL_METRICS]) {
    spool_worker_board *master = &base[SPOOL_BOARD_WORKERS];
    for (;;) {
        uint64_t before = __atomic_load_n(&master->reserved[1], __ATOMIC_SEQ_CST);
        if (before & 1) { sched_yield(); continue; }
        for (int i = 0; i < SPOOL_METRICS; i++) out[i] = 0;
        for (int b = 0; b <= SPOOL_BOARD_WORKERS; b++) {
            for (int i = 0; i < SPOOL_METRICS; i++) out[i] += __atomic_load_n(&base[b].metrics[i], __ATOMIC_SEQ_CST);
        }
        if (__atomic_load_n(&master->reserved[1], __ATOMIC_SEQ_CST) == before) return;
    }
}

void spool_scoreboard_set_wanted(spool_worker_board *base, uint64_t workers) {
    __atomic_store_n(&base[SPOOL_BOARD_WORKERS].reserved[0], workers, __ATOMIC_RELAXED);
}

uint64_t spool_scoreboard_wanted(const spool_worker_board *base) {
    return __atomic_load_n(&base[SPOOL_BOARD_WORKERS].reserved[0], __ATOMIC_RELAXED);
}

void spool_board_reset(spool_worker_board *board) {
    __atomic_store_n(&board->heartbeat, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&board->connections, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < SPOOL_BOARD_UPLOADS; i++) spool_slot_release(board, i);
    for (int i = 0; i < SPOOL_CLIENT_BUCKETS; i++) __atomic_store_n(&board->clients[i], 0, __ATOMIC_RELAXED);
}

void spool_board_client_add(spool_worker_board *board, int bucket, int32_t delta) {
    __atomic_add_fetch(&board->clients[bucket], (uint32_t)delta, __ATOMIC_RELAXED);
}

uint32_t spool_scoreboard_client_connections(spool_worker_board *base, int bucket) {
    uint32_t total = 0;
    for (int w = 0; w < SPOOL_BOARD_WORKERS; w++) {
        if (spool_board_heartbeat(&base[w]) == 0) continue;
        total += __atomic_load_n(&base[w].clients[bucket], __ATOMIC_RELAXED);
    }
    return total;
}

void spool_board_beat(spool_worker_board *board, uint64_t now_ms) {
    __atomic_store_n(&board->heartbeat, now_ms, __ATOMIC_RELAXED);
}

uint64_t spool_board_heartbeat(const spool_worker_board *board) {
    return __atomic_load_n(&board->heartbeat, __ATOMIC_RELAXED);
}

void spool_board_add_connections(spool_worker_board *board, int64_t delta) {
    __atomic_add_fetch(&board->connections, (uint64_t)delta, __ATOMIC_RELAXED);
}

uint64_t spool_board_connections(const spool_worker_board *board) {
    return __atomic_load_n(&board->connections, __ATOMIC_RELAXED);
}

static void slot_begin_write(spool_upload_slot *s) {
    uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, seq | 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void slot_end_write(spool_upload_slot *s) {
    uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, (seq | 1) + 1, __ATOMIC_RELEASE);
}

void spool_slot_claim(spool_worker_board *board, int slot, const char *id, uint64_t received, uint64_t size) {
    spool_upload_slot *s = &board->uploads[slot];
    slot_begin_write(s);
    memset(s->id, 0, SPOOL_ID_BYTES);
    strncpy(s->id, id, SPOOL_ID_BYTES - 1);
    s->received = received;
    s->size = size;
    s->rate = 0;
    s->updated_ms = spool_monotonic_ms();
    slot_end_write(s);
}

void spool_slot_publish(spool_worker_board *board, int slot, uint64_t received, uint64_t rate, uint64_t now_ms) {
    spool_upload_slot *s = &board->uploads[slot];
    slot_begin_write(s);
    __atomic_store_n(&s->received, received, __ATOMIC_RELAXED);
    __atomic_store_n(&s->rate, rate, __ATOMIC_RELAXED);
    __atomic_store_n(&s->updated_ms, now_ms, __ATOMIC_RELAXED);
    slot_end_write(s);
}

void spool_slot_release(spool_worker_board *board, int slot) {
    spool_upload_slot *s = &board->uploads[slot];
    slot_begin_write(s);
    memset(s->id, 0, SPOOL_ID_BYTES);
    slot_end_write(s);
}

/// Reads a consistent copy of a slot; returns 0 when it is free or does not match `id`.
static int slot_read(spool_upload_slot *s, const char *id, spool_upload_progress *out) {
    for (int attempt = 0; attempt < 1000; attempt++) {
        uint64_t before = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        if (before & 1) continue;
        char copy[SPOOL_ID_BYTES];
        memcpy(copy, s->id, SPOOL_ID_BYTES);
        spool_upload_progress p;
        p.received = __atomic_load_n(&s->received, __ATOMIC_RELAXED);
        p.size = __atomic_load_n(&s->size, __ATOMIC_RELAXED);
        p.rate = __atomic_load_n(&s->rate, __ATOMIC_RELAXED);
        p.updated_ms = __atomic_load_n(&s->updated_ms, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != before) continue;
        if (copy[0] == 0) return 0;
        if (id && strncmp(copy, id, SPOOL_ID_BYTES) != 0) return 0;
        if (out) *out = p;
        return 1;
    }
    return 0;
}

int spool_scoreboard_find(spool_worker_board *base, const char *id, spool_upload_progress *out) {
    for (int w = 0; w < SPOOL_BOARD_WORKERS; w++) {
        if (spool_board_heartbeat(&base[w]) == 0) continue;
        for (int i = 0; i < SPOOL_BOARD_UPLOADS; i++) {
            if (slot_read(&base[w].uploads[i], id, out)) {
                if (out) out->worker_index = w;
                return 1;
            }
        }
    }
    return 0;
}

int spool_scoreboard_live_uploads(spool_worker_board *base) {
    int count = 0;
    for (int w = 0; w < SPOOL_BOARD_WORKERS; w++) {
        if (spool_board_heartbeat(&base[w]) == 0) continue;
        for (int i = 0; i < SPOOL_BOARD_UPLOADS; i++) count += slot_read(&base[w].uploads[i], NULL, NULL);
    }
    return count;
}

uint64_t spool_monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int spool_open_pty(char *name, unsigned long name_size) {
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0) return -1;
    if (grantpt(fd) != 0 || unlockpt(fd) != 0 || ptsname_r(fd, name, name_size) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int spool_start_writeback(int fd, long long offset, long long length) {
    return sync_file_range(fd, (off64_t)offset, (off64_t)length, SYNC_FILE_RANGE_WRITE);
}

int spool_syncfs(int fd) {
    return syncfs(fd);
}
