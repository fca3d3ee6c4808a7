/*
 * llmos: the command line's front end.
 *
 * A Python interpreter takes tens to hundreds of milliseconds to start before the first line
 * of llmos runs; this binary starts in about one. It sends its arguments (with the
 * environment and working directory a verb may read) to llmosd as one `cli.run` call. The
 * daemon runs the same command-line code that `python3 -m llmos.cli.main` runs, streams back
 * what it writes to stdout and stderr, and ends with the exit code.
 *
 * Verbs that need this process's own terminal or stdin (run -it, exec -it, login
 * --password-stdin, the low-level runtime, build) come back as "local": this binary then
 * execs the Python command line with the same arguments. So does a missing daemon, so that
 * its error message is the one the Python command line gives.
 *
 * SIGINT and SIGTERM are forwarded as a `cli.signal` call on a second connection; the daemon
 * passes them to the container when the verb asked for that (a foreground `run`), otherwise
 * this process ends as the signal would end it.
 *
 * Wire format: as llmos/daemon/protocol.py, a 4-byte big-endian length then a msgpack map.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef LLMOS_PYTHON
#define LLMOS_PYTHON "python3"
#endif
#define DEFAULT_SOCKET "/run/llmos/llmos.sock"
#define MAX_FRAME (16u << 20)

extern char **environ;

static int g_argc;
static char **g_argv;
static const char *g_socket;
static char g_token[33];
static volatile sig_atomic_t g_signal;
/* The handler also writes here, so a signal that lands between two reads is not lost. */
static int g_sigpipe[2] = {-1, -1};

/* ---- the Python command line, for what this binary does not carry ------------------- */

static void exec_python(void)
{
    const char *candidates[3] = {getenv("LLMOS_PYTHON"), LLMOS_PYTHON, "python3"};
    char **args = calloc((size_t)g_argc + 4, sizeof *args);
    if (args == NULL)
        _exit(125);
    args[1] = "-m";
    args[2] = "llmos.cli.main";
    for (int i = 1; i < g_argc; i++)
        args[i + 2] = g_argv[i];
    for (int i = 0; i < 3; i++) {
        if (candidates[i] == NULL || candidates[i][0] == 0)
            continue;
        args[0] = (char *)candidates[i];
        if (strchr(candidates[i], '/') != NULL)
            execv(candidates[i], args);
        else
            execvp(candidates[i], args);
    }
    fprintf(stderr, "llmos: cannot run the Python command line (%s): %s\n", LLMOS_PYTHON,
            strerror(errno));
    _exit(125);
}

/* ---- msgpack: just the shapes this exchange uses ------------------------------------- */

struct buf {
    unsigned char *p;
    size_t len, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (p == NULL) {
            fputs("llmos: out of memory\n", stderr);
            _exit(125);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void put_be(struct buf *b, uint64_t v, int bytes)
{
    unsigned char t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    put(b, t, (size_t)bytes);
}

static void pk_head(struct buf *b, unsigned fix, unsigned fixmax, unsigned char c16,
                    unsigned char c32, size_t n)
{
    unsigned char c;
    if (n < fixmax) {
        c = (unsigned char)(fix | n);
        put(b, &c, 1);
    } else if (n < 65536) {
        put(b, &c16, 1);
        put_be(b, n, 2);
    } else {
        put(b, &c32, 1);
        put_be(b, n, 4);
    }
}

static void pk_str(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n < 32) {
        unsigned char c = (unsigned char)(0xa0 | n);
        put(b, &c, 1);
    } else if (n < 256) {
        unsigned char c = 0xd9;
        put(b, &c, 1);
        put_be(b, n, 1);
    } else if (n < 65536) {
        unsigned char c = 0xda;
        put(b, &c, 1);
        put_be(b, n, 2);
    } else {
        unsigned char c = 0xdb;
        put(b, &c, 1);
        put_be(b, n, 4);
    }
    put(b, s, n);
}

static void pk_map(struct buf *b, size_t n) { pk_head(b, 0x80, 16, 0xde, 0xdf, n); }
static void pk_arr(struct buf *b, size_t n) { pk_head(b, 0x90, 16, 0xdc, 0xdd, n); }

static void pk_uint(struct buf *b, uint32_t v)
{
    if (v < 128) {
        unsigned char c = (unsigned char)v;
        put(b, &c, 1);
    } else {
        unsigned char c = 0xce;
        put(b, &c, 1);
        put_be(b, v, 4);
    }
}

static void pk_bool(struct buf *b, int v)
{
    unsigned char c = v ? 0xc3 : 0xc2;
    put(b, &c, 1);
}

enum { T_NIL, T_BOOL, T_INT, T_STR, T_BIN, T_ARR, T_MAP, T_OTHER };

struct val {
    int t;
    int64_t i;                /* bool and int */
    const unsigned char *s;   /* str and bin */
    size_t n;                 /* length of str/bin, count of arr/map */
};

struct rd {
    const unsigned char *p, *end;
};

static int take(struct rd *r, size_t n, const unsigned char **out)
{
    if ((size_t)(r->end - r->p) < n)
        return -1;
    *out = r->p;
    r->p += n;
    return 0;
}

static int be(struct rd *r, int bytes, uint64_t *v)
{
    const unsigned char *p;
    if (take(r, (size_t)bytes, &p) < 0)
        return -1;
    *v = 0;
    for (int i = 0; i < bytes; i++)
        *v = (*v << 8) | p[i];
    return 0;
}

/* One value's head; the bytes of a str or bin are consumed, a container's children are not. */
static int next(struct rd *r, struct val *v)
{
    const unsigned char *p;
    uint64_t u;
    if (take(r, 1, &p) < 0)
        return -1;
    unsigned c = *p;
    memset(v, 0, sizeof *v);
    if (c <= 0x7f || c >= 0xe0) {
        v->t = T_INT;
        v->i = c <= 0x7f ? (int64_t)c : (int64_t)(int8_t)c;
        return 0;
    }
    if ((c & 0xf0) == 0x80 || (c & 0xf0) == 0x90) {
        v->t = (c & 0xf0) == 0x80 ? T_MAP : T_ARR;
        v->n = c & 0x0f;
        return 0;
    }
    if ((c & 0xe0) == 0xa0) {
        v->t = T_STR;
        v->n = c & 0x1f;
        return take(r, v->n, &v->s);
    }
    switch (c) {
    case 0xc0:
        v->t = T_NIL;
        return 0;
    case 0xc2:
    case 0xc3:
        v->t = T_BOOL;
        v->i = c == 0xc3;
        return 0;
    case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb: {
        int w = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
        if (be(r, w, &u) < 0)
            return -1;
        v->t = c <= 0xc6 ? T_BIN : T_STR;
        v->n = (size_t)u;
        return take(r, v->n, &v->s);
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int w = 1 << (c - 0xcc);
        if (be(r, w, &u) < 0)
            return -1;
        v->t = T_INT;
        v->i = (int64_t)u;
        return 0;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int w = 1 << (c - 0xd0);
        if (be(r, w, &u) < 0)
            return -1;
        v->t = T_INT;
        v->i = w == 1 ? (int8_t)u : w == 2 ? (int16_t)u : w == 4 ? (int32_t)u : (int64_t)u;
        return 0;
    }
    case 0xca: case 0xcb:
        v->t = T_OTHER;
        return take(r, c == 0xca ? 4 : 8, &p);
    case 0xdc: case 0xdd: case 0xde: case 0xdf:
        if (be(r, (c & 1) ? 4 : 2, &u) < 0)
            return -1;
        v->t = c <= 0xdd ? T_ARR : T_MAP;
        v->n = (size_t)u;
        return 0;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        v->t = T_OTHER;
        return take(r, 1 + ((size_t)1 << (c - 0xd4)), &p);
    case 0xc7: case 0xc8: case 0xc9: {
        int w = 1 << (c - 0xc7);
        if (be(r, w, &u) < 0)
            return -1;
        v->t = T_OTHER;
        return take(r, (size_t)u + 1, &p);
    }
    default:
        return -1;
    }
}

/* Skip the children of a container whose head `v` was just read. */
static int skip_children(struct rd *r, const struct val *v, int depth)
{
    if (v->t != T_ARR && v->t != T_MAP)
        return 0;
    if (depth > 64)
        return -1;
    size_t count = v->t == T_MAP ? v->n * 2 : v->n;
    for (size_t k = 0; k < count; k++) {
        struct val c;
        if (next(r, &c) < 0 || skip_children(r, &c, depth + 1) < 0)
            return -1;
    }
    return 0;
}

static int key_is(const struct val *k, const char *s)
{
    return k->t == T_STR && k->n == strlen(s) && memcmp(k->s, s, k->n) == 0;
}

/* ---- the socket ----------------------------------------------------------------------- */

static int connect_daemon(void)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    int dfd = -1;
    if (strlen(g_socket) < sizeof a.sun_path) {
        snprintf(a.sun_path, sizeof a.sun_path, "%s", g_socket);
    } else {
        /* Too long for sun_path: go through the directory's descriptor. */
        const char *slash = strrchr(g_socket, '/');
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - g_socket), g_socket);
        dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || (size_t)snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/%s",
                                         dfd, slash + 1) >= sizeof a.sun_path) {
            if (dfd >= 0)
                close(dfd);
            close(s);
            errno = ENAMETOOLONG;
            return -1;
        }
    }
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    if (dfd >= 0)
        close(dfd);
    if (rc < 0) {
        close(s);
        return -1;
    }
    return s;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_frame(int s, struct buf *body)
{
    unsigned char h[4] = {(unsigned char)(body->len >> 24), (unsigned char)(body->len >> 16),
                          (unsigned char)(body->len >> 8), (unsigned char)body->len};
    if (write_all(s, h, 4) < 0)
        return -1;
    return write_all(s, body->p, body->len);
}

static void handle_signal(void);

/* Read exactly n bytes; a signal that arrives meanwhile is forwarded. 0 at a clean EOF. */
static int read_full(int s, unsigned char *p, size_t n, int forward)
{
    size_t got = 0;
    while (got < n) {
        if (forward) {
            struct pollfd pf[2] = {{.fd = s, .events = POLLIN}, {.fd = g_sigpipe[0], .events = POLLIN}};
            if (poll(pf, 2, -1) < 0 && errno != EINTR)
                return -1;
            if (pf[1].revents & POLLIN) {
                char drain[16];
                while (read(g_sigpipe[0], drain, sizeof drain) > 0)
                    ;
                if (g_signal)
                    handle_signal();
                continue;
            }
            if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
        }
        ssize_t r = read(s, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) {
                if (forward && g_signal)
                    handle_signal();
                continue;
            }
            return -1;
        }
        if (r == 0)
            return got == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

/* One frame's body into *out (malloc'd); 1, 0 at EOF, -1 on error. */
static int read_frame(int s, unsigned char **out, size_t *len, int forward)
{
    unsigned char h[4];
    int r = read_full(s, h, 4, forward);
    if (r <= 0)
        return r;
    uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    if (n > MAX_FRAME)
        return -1;
    unsigned char *p = malloc(n ? n : 1);
    if (p == NULL)
        return -1;
    if (read_full(s, p, n, forward) != 1) {
        free(p);
        return -1;
    }
    *out = p;
    *len = n;
    return 1;
}

static void request_head(struct buf *b, const char *method, size_t nparams)
{
    pk_map(b, 3);
    pk_str(b, "id");
    pk_uint(b, 1);
    pk_str(b, "method");
    pk_str(b, method);
    pk_str(b, "params");
    pk_map(b, nparams);
}

/* ---- signals -------------------------------------------------------------------------- */

static void on_signal(int sig)
{
    int saved = errno;
    g_signal = sig;
    if (write(g_sigpipe[1], "s", 1) < 0) {
        /* full: a wake-up is already pending */
    }
    errno = saved;
}

/* Ask the daemon to pass the signal on; if the verb does not take it, end as it would. */
static void handle_signal(void)
{
    int sig = g_signal;
    g_signal = 0;
    int handled = 0;
    int s = connect_daemon();
    if (s >= 0) {
        struct buf b = {0};
        request_head(&b, "cli.signal", 2);
        pk_str(&b, "token");
        pk_str(&b, g_token);
        pk_str(&b, "signal");
        pk_uint(&b, (uint32_t)sig);
        unsigned char *body = NULL;
        size_t len = 0;
        if (send_frame(s, &b) == 0 && read_frame(s, &body, &len, 0) == 1) {
            struct rd r = {body, body + len};
            struct val m, k, v;
            if (next(&r, &m) == 0 && m.t == T_MAP) {
                for (size_t i = 0; i < m.n; i++) {
                    if (next(&r, &k) < 0 || next(&r, &v) < 0)
                        break;
                    if (key_is(&k, "result") && v.t == T_MAP) {
                        for (size_t j = 0; j < v.n; j++) {
                            struct val k2, v2;
                            if (next(&r, &k2) < 0 || next(&r, &v2) < 0)
                                break;
                            if (key_is(&k2, "handled") && v2.t == T_BOOL)
                                handled = (int)v2.i;
                            if (skip_children(&r, &v2, 0) < 0)
                                break;
                        }
                        break;
                    }
                    if (skip_children(&r, &v, 0) < 0)
                        break;
                }
            }
        }
        free(body);
        free(b.p);
        close(s);
    }
    if (!handled) {
        signal(sig, SIG_DFL);
        raise(sig);
        _exit(128 + sig);
    }
}

/* ---- the call ------------------------------------------------------------------------- */

static void find_socket(void)
{
    const char *host = NULL;
    for (int i = 1; i + 1 < g_argc; i += 2) {
        if (strcmp(g_argv[i], "-H") != 0 && strcmp(g_argv[i], "--host") != 0)
            break;
        host = g_argv[i + 1];
    }
    if (host == NULL)
        host = getenv("LLMOS_HOST");
    if (host == NULL || host[0] == 0) {
        g_socket = DEFAULT_SOCKET;
        return;
    }
    if (strncmp(host, "unix://", 7) != 0)
        exec_python(); /* its message says what addresses are understood */
    g_socket = host + 7;
}

static void make_token(void)
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(getpid() >> (i % 4) ^ i);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(g_token + 2 * i, 3, "%02x", r[i]);
}

/* Write a stream item's bytes where they belong; a reader that left ends us quietly. */
static void emit(int fd, const struct val *v)
{
    if (write_all(fd, v->s, v->n) < 0) {
        if (errno == EPIPE)
            _exit(0); /* `llmos logs x | head`: the reader left; not an error */
        _exit(125);
    }
}

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    find_socket();
    int s = connect_daemon();
    if (s < 0)
        exec_python();
    make_token();
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL)
        cwd[0] = 0;
    size_t nenv = 0;
    while (environ[nenv] != NULL)
        nenv++;

    struct buf b = {0};
    request_head(&b, "cli.run", 6);
    pk_str(&b, "argv");
    pk_arr(&b, (size_t)argc - 1);
    for (int i = 1; i < argc; i++)
        pk_str(&b, argv[i]);
    pk_str(&b, "env");
    pk_arr(&b, nenv);
    for (size_t i = 0; i < nenv; i++)
        pk_str(&b, environ[i]);
    pk_str(&b, "cwd");
    pk_str(&b, cwd);
    pk_str(&b, "token");
    pk_str(&b, g_token);
    pk_str(&b, "stdin_tty");
    pk_bool(&b, isatty(0));
    pk_str(&b, "stdout_tty");
    pk_bool(&b, isatty(1));

    signal(SIGPIPE, SIG_IGN);
    if (pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        perror("llmos: pipe");
        return 125;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (send_frame(s, &b) < 0)
        exec_python();
    free(b.p);

    for (;;) {
        unsigned char *body = NULL;
        size_t len = 0;
        int r = read_frame(s, &body, &len, 1);
        if (r <= 0) {
            fputs("llmos: the daemon closed the connection before the command ended\n",
                  stderr);
            return 125;
        }
        struct rd rd = {body, body + len};
        struct val m, k, v;
        if (next(&rd, &m) < 0 || m.t != T_MAP)
            goto bad;
        for (size_t i = 0; i < m.n; i++) {
            if (next(&rd, &k) < 0 || next(&rd, &v) < 0)
                goto bad;
            if (key_is(&k, "stream") && v.t == T_MAP) {
                for (size_t j = 0; j < v.n; j++) {
                    struct val k2, v2;
                    if (next(&rd, &k2) < 0 || next(&rd, &v2) < 0)
                        goto bad;
                    if (key_is(&k2, "o") && v2.t == T_BIN)
                        emit(1, &v2);
                    else if (key_is(&k2, "e") && v2.t == T_BIN)
                        emit(2, &v2);
                    else if (skip_children(&rd, &v2, 0) < 0)
                        goto bad;
                }
                continue;
            }
            if (key_is(&k, "result") && v.t == T_MAP) {
                for (size_t j = 0; j < v.n; j++) {
                    struct val k2, v2;
                    if (next(&rd, &k2) < 0 || next(&rd, &v2) < 0)
                        goto bad;
                    if (key_is(&k2, "local") && v2.t == T_BOOL && v2.i) {
                        close(s);
                        exec_python();
                    }
                    if (key_is(&k2, "exit") && v2.t == T_INT)
                        return (int)(v2.i & 0xff);
                    if (skip_children(&rd, &v2, 0) < 0)
                        goto bad;
                }
                goto bad;
            }
            if (key_is(&k, "error") && v.t == T_MAP) {
                const unsigned char *msg = (const unsigned char *)"unknown error";
                size_t msg_n = strlen((const char *)msg);
                int unknown_method = 0;
                for (size_t j = 0; j < v.n; j++) {
                    struct val k2, v2;
                    if (next(&rd, &k2) < 0 || next(&rd, &v2) < 0)
                        goto bad;
                    if (key_is(&k2, "message") && v2.t == T_STR) {
                        msg = v2.s;
                        msg_n = v2.n;
                        unknown_method = memmem(msg, msg_n, "unknown method", 14) != NULL;
                    } else if (skip_children(&rd, &v2, 0) < 0) {
                        goto bad;
                    }
                }
                if (unknown_method) { /* a daemon older than this front end */
                    close(s);
                    exec_python();
                }
                fprintf(stderr, "llmos: %.*s\n", (int)msg_n, (const char *)msg);
                return 125;
            }
            if (skip_children(&rd, &v, 0) < 0)
                goto bad;
        }
        free(body);
    }
bad:
    fputs("llmos: a malformed reply from the daemon\n", stderr);
    return 125;
}
