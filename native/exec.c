/*
 * Exec into a running container: join its cgroups and namespaces, fork once more so the new
 * process lands in the container's pid namespace, then run the shared process steps. The
 * first process stays as a tiny waiter whose exit status is the exec'd process's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "steps.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static volatile pid_t forward_to;

static void forward(int sig)
{
    if (forward_to > 0)
        kill(forward_to, sig);
}

static const struct {
    int type;
    const char *name;
} ns_order[] = {
    /* user first (grants the rest), mnt last (it changes what /proc/<pid> means). */
    {CLONE_NEWUSER, "user"}, {CLONE_NEWIPC, "ipc"},       {CLONE_NEWUTS, "uts"},
    {CLONE_NEWNET, "net"},   {CLONE_NEWPID, "pid"},       {CLONE_NEWCGROUP, "cgroup"},
    {CLONE_NEWNS, "mnt"},
};

void llmos_exec_child(const struct llmos_plan *p, int sync_fd)
{
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int i = 0; i < 3; i++)
        if (p->stdio[i] >= 0 && p->stdio[i] != i && dup2(p->stdio[i], i) < 0)
            llmos_fail(sync_fd, STEP_SYNC, errno, "dup2 stdio %d", i);
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
    for (int i = 0; i < p->n_cgroup_procs; i++)
        if (llmos_write_file(p->cgroup_procs[i], pidbuf) != 0)
            llmos_fail(sync_fd, STEP_CGROUP, errno, "join %s", p->cgroup_procs[i]);

    int fds[8];
    int n = 0;
    for (size_t i = 0; i < sizeof ns_order / sizeof ns_order[0]; i++) {
        if (!(p->clone_flags & (unsigned long long)ns_order[i].type))
            continue;
        char path[64], self[64];
        snprintf(path, sizeof path, "/proc/%d/ns/%s", p->join_pid, ns_order[i].name);
        snprintf(self, sizeof self, "/proc/self/ns/%s", ns_order[i].name);
        struct stat a, b;
        if (stat(path, &a) != 0)
            llmos_fail(sync_fd, STEP_SETNS, errno, "stat %s", path);
        if (stat(self, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            fds[n++] = -1; /* already there; setns into one's own user ns is EINVAL */
            continue;
        }
        fds[n] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[n] < 0)
            llmos_fail(sync_fd, STEP_SETNS, errno, "open %s", path);
        n++;
    }
    n = 0;
    for (size_t i = 0; i < sizeof ns_order / sizeof ns_order[0]; i++) {
        if (!(p->clone_flags & (unsigned long long)ns_order[i].type))
            continue;
        int fd = fds[n++];
        if (fd < 0)
            continue;
        if (setns(fd, ns_order[i].type) != 0)
            llmos_fail(sync_fd, STEP_SETNS, errno, "setns %s of pid %d", ns_order[i].name,
                       p->join_pid);
        close(fd);
    }
    pid_t child = fork();
    if (child < 0)
        llmos_fail(sync_fd, STEP_FORK, errno, "fork");
    if (child == 0) {
        syscall(SYS_close_range, 3 + p->n_preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
        if (p->clone_flags & CLONE_NEWUSER) {
            if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
                llmos_fail(sync_fd, STEP_USER, errno, "become root in the user namespace");
        }
        llmos_finish_process(p, sync_fd, -1);
    }
    forward_to = child;
    llmos_send(sync_fd, LLMOS_MSG_PID, (int)child, 0, 0, NULL);
    close(sync_fd);
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], forward);
    int st;
    while (waitpid(child, &st, 0) < 0)
        if (errno != EINTR)
            _exit(125);
    if (WIFEXITED(st))
        _exit(WEXITSTATUS(st));
    _exit(128 + WTERMSIG(st));
}
