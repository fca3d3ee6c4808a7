/* Error reporting and small helpers shared by the spawn and exec paths. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "steps.h"

static const char *const step_names[STEP_MAX] = {
    [0] = "unknown",
    [STEP_FORK] = "fork",
    [STEP_CLONE] = "clone",
    [STEP_IDMAP] = "id mappings",
    [STEP_CGROUP] = "cgroup",
    [STEP_SYNC] = "sync",
    [STEP_SETNS] = "setns",
    [STEP_HOSTNAME] = "hostname",
    [STEP_PROPAGATION] = "mount propagation",
    [STEP_ROOTFS] = "rootfs",
    [STEP_MOUNTS] = "mount",
    [STEP_DEVICES] = "devices",
    [STEP_HOOKS] = "hooks",
    [STEP_PIVOT_ROOT] = "pivot_root",
    [STEP_SYSCTL] = "sysctl",
    [STEP_MASKED] = "masked paths",
    [STEP_READONLY] = "readonly paths",
    [STEP_CONSOLE] = "console",
    [STEP_CWD] = "cwd",
    [STEP_OOM_SCORE] = "oom_score_adj",
    [STEP_RLIMITS] = "rlimits",
    [STEP_PERSONALITY] = "personality",
    [STEP_USER] = "user",
    [STEP_CAPS] = "capabilities",
    [STEP_NO_NEW_PRIVS] = "no_new_privs",
    [STEP_SECCOMP] = "seccomp",
    [STEP_WAIT_START] = "wait for start",
    [STEP_EXEC] = "exec",
    [STEP_SHIM] = "shim",
};

const char *llmos_step_name(int step)
{
    if (step <= 0 || step >= STEP_MAX || step_names[step] == NULL)
        return "unknown";
    return step_names[step];
}

void llmos_send(int sync_fd, int type, int pid, int step, int err, const char *text)
{
    struct llmos_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.pid = pid;
    m.step = step;
    m.err = err;
    if (text != NULL)
        snprintf(m.text, sizeof m.text, "%s", text);
    ssize_t n;
    do {
        n = send(sync_fd, &m, sizeof m, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && type == LLMOS_MSG_ERROR) {
        /* Nobody listens any more (after `create` returned): stderr is the last resort. */
        char line[600];
        int len = snprintf(line, sizeof line, "llmos: %s\n", m.text);
        if (len > 0 && write(2, line, (size_t)len) < 0) {
            /* nothing left to tell */
        }
    }
}

__thread volatile int llmos_exec_reached;

void llmos_fail_raw(int sync_fd, int step, int err, const char *text)
{
    llmos_send(sync_fd, LLMOS_MSG_ERROR, 0, step, err, text);
    /* Like a shell: 127 for a missing command, 126 for one that cannot run. */
    if (step == STEP_EXEC)
        _exit(err == ENOENT ? 127 : 126);
    _exit(125);
}

void llmos_fail(int sync_fd, int step, int err, const char *fmt, ...)
{
    char text[sizeof(((struct llmos_msg *)0)->text)];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (err != 0 && len > 0 && (size_t)len < sizeof text)
        snprintf(text + len, sizeof text - (size_t)len, ": %s", strerror(err));
    llmos_fail_raw(sync_fd, step, err, text);
}

int llmos_write_file(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(data);
    ssize_t n = write(fd, data, len);
    int saved = errno;
    close(fd);
    if (n < 0 || (size_t)n != len) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

int llmos_pidfd_open(int pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int llmos_pidfd_send_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}
