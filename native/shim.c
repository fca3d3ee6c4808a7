/*
 * llmos-shim: the per-container monitor. It is the container's parent, so it reaps it and
 * records the exit status (tmp + rename) for whoever asks later; it drains the container's
 * stdout/stderr pipes into a CRI-format log file ("<RFC3339Nano> <stream> <F|P> <text>"),
 * so the container never blocks on a full pipe and keeps logging while no daemon runs.
 * It holds no Python and allocates nothing after start: well under a megabyte resident.
 *
 * With a terminal, STDOUT_FD is the pty master and ATTACH names a Unix socket the shim
 * serves: a client that sends "attach\n" gets the recent output, then everything the
 * container writes, and what it sends goes to the container's terminal; "resize ROWS COLS\n"
 * sets the window size. One attached client at a time; a new one replaces the old.
 *
 * usage: llmos-shim PID EXIT_FILE LOG_FILE|- STDOUT_FD STDERR_FD [ATTACH]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
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

/* Terminal mode: the attach server, the attached client and the replay of recent output. */
#define REPLAY_BYTES 65536
static int listen_fd = -1, client_fd = -1, master_fd = -1;
static char replay[REPLAY_BYTES];
static size_t replay_len;

static void remember(const char *p, size_t n)
{
    if (n > REPLAY_BYTES) {
        p += n - REPLAY_BYTES;
        n = REPLAY_BYTES;
    }
    if (replay_len + n > REPLAY_BYTES) {
        size_t drop = replay_len + n - REPLAY_BYTES;
        memmove(replay, replay + drop, replay_len - drop);
        replay_len -= drop;
    }
    memcpy(replay + replay_len, p, n);
    replay_len += n;
}

static void to_client(const char *p, size_t n)
{
    if (client_fd < 0)
        return;
    while (n > 0) {
        ssize_t w = send(client_fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            close(client_fd); /* gone, or too slow (send timeout): detach it */
            client_fd = -1;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static int attach_dir = -1;
static char attach_base[64];

/*
 * sun_path holds 108 bytes and state directories can be deeper than that, so the socket is
 * bound through /proc/self/fd/N/NAME, N being the directory opened here.
 */
static int serve_attach(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || strlen(slash + 1) >= sizeof attach_base)
        return -1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    snprintf(attach_base, sizeof attach_base, "%s", slash + 1);
    attach_dir = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (attach_dir < 0)
        return -1;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", attach_dir,
             attach_base);
    unlinkat(attach_dir, attach_base, 0);
    mode_t old = umask(077);
    int rc = bind(s, (struct sockaddr *)&addr, sizeof addr);
    umask(old);
    if (rc != 0 || listen(s, 4) != 0) {
        close(s);
        return -1;
    }
    return s;
}

/* A new connection: read its one-line request (with a short timeout) and act on it. */
static int accept_client(void)
{
    int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return -1;
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char line[64];
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t r = recv(c, line + n, 1, 0);
        if (r <= 0)
            break;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = 0;
    unsigned rows, cols;
    if (sscanf(line, "resize %u %u", &rows, &cols) == 2) {
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        ioctl(master_fd, TIOCSWINSZ, &ws);
        close(c);
        return 0;
    }
    if (strcmp(line, "attach") != 0) {
        close(c);
        return 0;
    }
    struct timeval none = {0, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    if (client_fd >= 0)
        close(client_fd);
    client_fd = c;
    to_client(replay, replay_len);
    return 0;
}

/* Input from the attached client goes to the container's terminal. */
static void client_input(void)
{
    char buf[4096];
    ssize_t r = recv(client_fd, buf, sizeof buf, 0);
    if (r <= 0) {
        close(client_fd);
        client_fd = -1;
        return;
    }
    const char *p = buf;
    while (r > 0) {
        ssize_t w = write(master_fd, p, (size_t)r);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        r -= w;
    }
}

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
    if (r < 0 && errno == EIO)
        r = 0; /* a pty master reads EIO once the last slave fd is closed: that is EOF */
    if (r < 0)
        return errno == EINTR || errno == EAGAIN;
    if (r > 0 && s->fd == master_fd) {
        remember(s->buf + s->len, (size_t)r);
        to_client(s->buf + s->len, (size_t)r);
    }
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
    /* No fsync: readers need atomicity (the rename), not durability; after a host crash
     * there is no container left to have a status. It cost a millisecond per container. */
    close(fd);
    rename(tmp, exit_file);
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: llmos-shim PID EXIT_FILE LOG_FILE|- STDOUT_FD STDERR_FD "
                        "[ATTACH]\n");
        return 2;
    }
    pid_t child = (pid_t)atoi(argv[1]);
    const char *exit_file = argv[2];
    static struct stream streams[2];
    streams[0].fd = atoi(argv[4]);
    streams[0].name = "stdout";
    streams[1].fd = atoi(argv[5]);
    streams[1].name = "stderr";
    const char *attach = argc == 7 ? argv[6] : NULL;
    if (attach != NULL) {
        master_fd = streams[0].fd;
        listen_fd = serve_attach(attach);
    }
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
        struct pollfd pf[5];
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
        /* Attach stays served while the terminal drains: a client may come late. */
        if (listen_fd >= 0) {
            pf[n].fd = listen_fd;
            pf[n].events = POLLIN;
            n++;
        }
        if (client_fd >= 0) {
            pf[n].fd = client_fd;
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
        int lfd = listen_fd, cfd = client_fd;
        for (int k = 0; k < n; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (pf[k].fd == lfd && lfd >= 0)
                accept_client();
            else if (pf[k].fd == cfd && cfd >= 0 && cfd == client_fd)
                client_input();
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
    if (listen_fd >= 0) {
        /*
         * A client that connected after the last poll is still in the backlog: closing the
         * socket would hand it an empty stream. Unlink first (later ones fall back to the
         * log), then give the queued ones the replay.
         */
        unlinkat(attach_dir, attach_base, 0);
        int fl = fcntl(listen_fd, F_GETFL);
        fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
        struct pollfd lp = {.fd = listen_fd, .events = POLLIN};
        while (poll(&lp, 1, 0) == 1 && (lp.revents & POLLIN))
            if (accept_client() < 0)
                break;
        close(listen_fd);
    }
    record_exit(exit_file, status);
    if (client_fd >= 0)
        close(client_fd); /* the attached client sees EOF once the exit status is recorded */
    return 0;
}
