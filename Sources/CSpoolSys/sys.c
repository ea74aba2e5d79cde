#define _GNU_SOURCE
#include "CSpoolSys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

int spool_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0);
}

int spool_accept_cloexec(int listen_fd) {
    return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

int spool_pipe_nonblocking(int fds[2]) {
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}
