/* Internal helpers shared by spawn.c and exec.c (not seen by cffi). */
#ifndef LLMOS_STEPS_H
#define LLMOS_STEPS_H

#include "llmos.h"

enum llmos_step {
    STEP_FORK = 1,
    STEP_CLONE,
    STEP_IDMAP,
    STEP_CGROUP,
    STEP_SYNC,
    STEP_SETNS,
    STEP_HOSTNAME,
    STEP_PROPAGATION,
    STEP_ROOTFS,
    STEP_MOUNTS,
    STEP_DEVICES,
    STEP_HOOKS,
    STEP_PIVOT_ROOT,
    STEP_SYSCTL,
    STEP_MASKED,
    STEP_READONLY,
    STEP_CONSOLE,
    STEP_CWD,
    STEP_OOM_SCORE,
    STEP_RLIMITS,
    STEP_PERSONALITY,
    STEP_USER,
    STEP_CAPS,
    STEP_NO_NEW_PRIVS,
    STEP_SECCOMP,
    STEP_WAIT_START,
    STEP_EXEC,
    STEP_SHIM,
    STEP_MAX
};

/* Report a failed step to the caller and exit the child. Never returns. */
__attribute__((noreturn, format(printf, 4, 5)))
void llmos_fail(int sync_fd, int step, int err, const char *fmt, ...);

/* As llmos_fail, with the text as given (no strerror appended). */
__attribute__((noreturn))
void llmos_fail_raw(int sync_fd, int step, int err, const char *text);

void llmos_send(int sync_fd, int type, int pid, int step, int err, const char *text);

/* The process-side steps shared by spawn and exec: from cwd to execve. Never returns. */
__attribute__((noreturn))
void llmos_finish_process(const struct llmos_plan *p, int sync_fd, int fifo_fd);

int llmos_write_file(const char *path, const char *data);

/*
 * Set just before the final execve and cleared if it fails. A child that shares its
 * parent's memory until it execs (spawn's fast path) leaves it set exactly when it got as
 * far as its own program. Thread-local: a chain of CLONE_VM processes keeps the TLS of the
 * thread that started it, so two threads spawning at once each see their own.
 */
extern __thread volatile int llmos_exec_reached;

__attribute__((noreturn))
void llmos_exec_child(const struct llmos_plan *p, int sync_fd);

#endif
