/*
 * llmos-shim: the per-container monitor. It is the container's parent, so it reaps it and
 * records the exit status (tmp + rename) for whoever asks later; it drains the container's
 * stdout/stderr pipes into a CRI-format log file ("<RFC3339Nano> <stream> <F|P> <text>"),
 * so the container never blocks on a full pipe and keeps logging while no daemon runs.
 * It holds no Python and allocates nothing after start: well under a megabyte resident.
 *
 * usage: llmos-shim PID EXIT_FILE LOG_FILE|- STDOUT_FD STDERR_FD
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384

struct stream {
    int fd;
    const char *name;
    size_t len;
    char buf[LINE_MAX_BYTES];
};

static int log_fd = -1;

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* disk full or similar: drop rather than block the container */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void emit(struct stream *s, const char *text, size_t n, char tag)
{
    if (log_fd < 0)
        return;
    char head[96];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int h = (int)strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    h += snprintf(head + h, sizeof head - (size_t)h, ".%09ldZ %s %c ", ts.tv_nsec, s->name, tag);
    /* One write per line keeps lines whole for concurrent readers. */
    static char line[LINE_MAX_BYTES + 128];
    memcpy(line, head, (size_t)h);
    memcpy(line + h, text, n);
    line[(size_t)h + n] = '\n';
    write_all(log_fd, line, (size_t)h + n + 1);
}

/* Read what is there; returns 0 at EOF. */
static int drain(struct stream *s)
{
    ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN;
    if (r == 0) {
        if (s->len > 0)
            emit(s, s->buf, s->len, 'F');
        s->len = 0;
        return 0;
    }
    s->len += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] == '\n') {
            emit(s, s->buf + start, i - start, 'F');
            start = i + 1;
        }
    }
    if (start == 0 && s->len == sizeof s->buf) {
        emit(s, s->buf, s->len, 'P'); /* a line longer than the buffer: partial */
        s->len = 0;
    } else if (start > 0) {
        memmove(s->buf, s->buf + start, s->len - start);
        s->len -= start;
    }
    return 1;
}

static void record_exit(const char *exit_file, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char tmp[4096], body[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", exit_file);
    int n = snprintf(body, sizeof body, "%d %d %lld\n", code, sig,
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    write_all(fd, body, (size_t)n);
    fsync(fd);
    close(fd);
    rename(tmp, exit_file);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: llmos-shim PID EXIT_FILE LOG_FILE|- STDOUT_FD STDERR_FD\n");
        return 2;
    }
    pid_t child = (pid_t)atoi(argv[1]);
    const char *exit_file = argv[2];
    static struct stream streams[2];
    streams[0].fd = atoi(argv[4]);
    streams[0].name = "stdout";
    streams[1].fd = atoi(argv[5]);
    streams[1].name = "stderr";
    if (strcmp(argv[3], "-") != 0) {
        log_fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (log_fd < 0) {
            kill(child, SIGKILL); /* a container whose output goes nowhere is a bug */
        }
    }
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    int status = 0, exited = 0;
    struct timespec exit_at = {0, 0};
    for (;;) {
        if (!exited) {
            pid_t w = waitpid(child, &status, WNOHANG);
            if (w == child || (w < 0 && errno == ECHILD)) {
                exited = 1;
                clock_gettime(CLOCK_MONOTONIC, &exit_at);
            }
        }
        struct pollfd pf[3];
        int n = 0, open_streams = 0;
        for (int i = 0; i < 2; i++) {
            if (streams[i].fd >= 0) {
                pf[n].fd = streams[i].fd;
                pf[n].events = POLLIN;
                n++;
                open_streams++;
            }
        }
        if (exited && open_streams == 0)
            break;
        int timeout = -1;
        if (exited) {
            /* The pipes may be held by a process that escaped; do not wait forever. */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long ms = (now.tv_sec - exit_at.tv_sec) * 1000 + (now.tv_nsec - exit_at.tv_nsec) / 1000000;
            if (ms > 2000)
                break;
            timeout = (int)(2000 - ms);
        } else {
            pf[n].fd = sfd;
            pf[n].events = POLLIN;
            n++;
        }
        int r = poll(pf, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR)
            break;
        if (sfd >= 0) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                ;
        }
        for (int i = 0; i < 2; i++) {
            if (streams[i].fd < 0)
                continue;
            for (int k = 0; k < n; k++) {
                if (pf[k].fd == streams[i].fd && (pf[k].revents & (POLLIN | POLLHUP | POLLERR))) {
                    if (!drain(&streams[i])) {
                        close(streams[i].fd);
                        streams[i].fd = -1;
                    }
                }
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (streams[i].len > 0)
            emit(&streams[i], streams[i].buf, streams[i].len, 'F');
    if (log_fd >= 0)
        fsync(log_fd);
    record_exit(exit_file, status);
    return 0;
}
