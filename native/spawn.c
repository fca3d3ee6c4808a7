/*
 * Creating a container: caller -> intermediate (exits at once, so the caller never owns the
 * monitor) -> monitor (clones the container, writes id maps and cgroups, then execs the small
 * llmos-shim binary) -> container child (the ordered steps, then execve).
 *
 * Two ways through it: the fast path (see fast_monitor), where every process of the chain
 * shares the caller's memory and runs in turn, and the general one, where the monitor and
 * the child are copies, for what needs them to run side by side.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "rootfs.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static void join_namespaces(const struct llmos_plan *p, int sync_fd, int want_pid)
{
    /* The user namespace first: it grants the rights the other setns calls need. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < p->n_join; i++) {
            int is_user = p->join_types[i] == CLONE_NEWUSER;
            int is_pid = p->join_types[i] == CLONE_NEWPID;
            if ((pass == 0) != is_user || is_pid != want_pid)
                continue;
            int fd = open(p->join_paths[i], O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                llmos_fail(sync_fd, STEP_SETNS, errno, "open %s", p->join_paths[i]);
            if (setns(fd, p->join_types[i]) != 0)
                llmos_fail(sync_fd, STEP_SETNS, errno, "setns %s", p->join_paths[i]);
            close(fd);
        }
    }
}

static int connect_console(const struct llmos_plan *p, int sync_fd)
{
    if (p->console_socket == NULL)
        return -1;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        llmos_fail(sync_fd, STEP_CONSOLE, errno, "socket");
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", p->console_socket);
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0)
        llmos_fail(sync_fd, STEP_CONSOLE, errno, "connect %s", p->console_socket);
    return s;
}

/* Open a pty inside the container's devpts, hand the master over, make the slave our tty. */
static void setup_console(const struct llmos_plan *p, int sock, int sync_fd)
{
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        llmos_fail(sync_fd, STEP_CONSOLE, errno, "open /dev/ptmx");
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) != 0)
        llmos_fail(sync_fd, STEP_CONSOLE, errno, "unlock pty");
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0)
        llmos_fail(sync_fd, STEP_CONSOLE, errno, "open pty peer");
    if (p->console_rows > 0 && p->console_cols > 0) {
        struct winsize ws = {.ws_row = (unsigned short)p->console_rows,
                             .ws_col = (unsigned short)p->console_cols};
        ioctl(master, TIOCSWINSZ, &ws);
    }
    char name[] = "/dev/ptmx";
    struct iovec iov = {.iov_base = name, .iov_len = sizeof name - 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &master, sizeof(int));
    if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
        llmos_fail(sync_fd, STEP_CONSOLE, errno, "send pty master to %s", p->console_socket);
    close(master);
    close(sock);
    if (setsid() < 0 && errno != EPERM)
        llmos_fail(sync_fd, STEP_CONSOLE, errno, "setsid");
    if (ioctl(slave, TIOCSCTTY, 0) != 0)
        llmos_fail(sync_fd, STEP_CONSOLE, errno, "set controlling tty");
    for (int i = 0; i < 3; i++)
        if (dup2(slave, i) < 0)
            llmos_fail(sync_fd, STEP_CONSOLE, errno, "dup2 pty");
    if (slave > 2)
        close(slave);
}

__attribute__((noreturn))
static void container_child(const struct llmos_plan *p, int sync_fd, int go_fd, int out_w,
                            int err_w, int cons_fd)
{
    if (p->log_file != NULL && out_w >= 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
            llmos_fail(sync_fd, STEP_SYNC, errno, "set up stdio");
    } else {
        for (int i = 0; i < 3; i++)
            if (p->stdio[i] >= 0 && p->stdio[i] != i && dup2(p->stdio[i], i) < 0)
                llmos_fail(sync_fd, STEP_SYNC, errno, "dup2 stdio %d", i);
    }
    if (go_fd >= 0) {
        char go;
        if (read(go_fd, &go, 1) != 1)
            _exit(125); /* the monitor died before we were placed in our cgroups */
        close(go_fd);
    } else {
        /* The fast path: no monitor runs while we do, so we join our cgroups ourselves. */
        for (int i = 0; i < p->n_cgroup_procs; i++)
            if (llmos_write_file(p->cgroup_procs[i], "0") != 0)
                llmos_fail(sync_fd, STEP_CGROUP, errno, "join %s", p->cgroup_procs[i]);
    }
    /* Nothing of the caller leaks into the container but stdio and preserved fds. */
    syscall(SYS_close_range, 3 + p->n_preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);

    join_namespaces(p, sync_fd, 0);
    /* Only now are we in our cgroups: a cgroup namespace made here has them as its root. */
    if ((p->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) != 0)
        llmos_fail(sync_fd, STEP_SETNS, errno, "unshare cgroup namespace");
    if (p->clone_flags & CLONE_NEWUSER) {
        if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
            llmos_fail(sync_fd, STEP_USER, errno, "become root in the user namespace");
    }
    if (p->loopback_up && (p->clone_flags & CLONE_NEWNET)) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
            llmos_fail(sync_fd, STEP_SETNS, errno, "get flags of lo");
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
            llmos_fail(sync_fd, STEP_SETNS, errno, "bring lo up");
        close(s);
    }
    if (p->hostname != NULL && sethostname(p->hostname, strlen(p->hostname)) != 0)
        llmos_fail(sync_fd, STEP_HOSTNAME, errno, "sethostname %s", p->hostname);
    if (p->domainname != NULL && setdomainname(p->domainname, strlen(p->domainname)) != 0)
        llmos_fail(sync_fd, STEP_HOSTNAME, errno, "setdomainname %s", p->domainname);

    int fifo_fd = -1, console = -1;
    if (p->rootfs != NULL) {
        if (mount(NULL, "/", NULL, p->root_propagation, NULL) != 0)
            llmos_fail(sync_fd, STEP_PROPAGATION, errno, "set propagation of /");
        llmos_mount_rootfs(p, sync_fd);
        int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            llmos_fail(sync_fd, STEP_ROOTFS, errno, "open %s", p->rootfs);
        llmos_do_mounts(p, rootfd, sync_fd);
        llmos_make_devices(p, rootfd, sync_fd);
        close(rootfd);
        if (p->exec_fifo != NULL) {
            fifo_fd = open(p->exec_fifo, O_PATH | O_CLOEXEC);
            if (fifo_fd < 0)
                llmos_fail(sync_fd, STEP_WAIT_START, errno, "open %s", p->exec_fifo);
        }
        console = cons_fd >= 0 ? cons_fd : connect_console(p, sync_fd);
        if (p->hooks_sync) {
            llmos_send(sync_fd, LLMOS_MSG_HOOKS, 0, 0, 0, NULL);
            char ack = 1;
            if (read(sync_fd, &ack, 1) != 1 || ack != 0)
                llmos_fail(sync_fd, STEP_HOOKS, 0, "hooks failed or the caller went away");
        }
        llmos_pivot_root(p, sync_fd);
        llmos_write_sysctls(p, sync_fd);
        llmos_mask_paths(p, sync_fd);
    } else {
        if (p->exec_fifo != NULL) {
            fifo_fd = open(p->exec_fifo, O_PATH | O_CLOEXEC);
            if (fifo_fd < 0)
                llmos_fail(sync_fd, STEP_WAIT_START, errno, "open %s", p->exec_fifo);
        }
        console = cons_fd >= 0 ? cons_fd : connect_console(p, sync_fd);
    }
    if (console >= 0)
        setup_console(p, console, sync_fd);
    llmos_finish_process(p, sync_fd, fifo_fd);
}

static pid_t clone_container(const struct llmos_plan *p, int *into_cgroup)
{
    *into_cgroup = 0;
    unsigned long long flags = p->clone_flags & ~(unsigned long long)CLONE_NEWCGROUP;
    if (p->cgroup_v2_dir != NULL) {
        int cg = open(p->cgroup_v2_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg >= 0) {
            struct clone_args args;
            memset(&args, 0, sizeof args);
            args.flags = flags | CLONE_INTO_CGROUP;
            args.exit_signal = SIGCHLD;
            args.cgroup = (uint64_t)cg;
            pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
            int saved = errno;
            if (pid == 0)
                return 0;
            close(cg);
            if (pid > 0) {
                *into_cgroup = 1;
                return pid;
            }
            errno = saved;
            /* ENOSYS (old kernel), EBUSY/EOPNOTSUPP (domain rules): write cgroup.procs. */
        }
    }
    return (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, 0, 0, 0, 0);
}

static int write_idmap(pid_t pid, const char *file, const char *map)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    return llmos_write_file(path, map);
}

__attribute__((noreturn))
static void kill_and_fail(pid_t child, int sync_fd, int step, int err, const char *what)
{
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    llmos_fail(sync_fd, step, err, "%s", what);
}

/* The pty master the child sends over the console socketpair, or -1 if it sent none. */
static int receive_master(int sock)
{
    char buf[16];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* The container's output goes to the shim: a socketpair that will carry its pty master,
 * or a pipe for each of stdout and stderr when it writes a log. */
static void output_channels(const struct llmos_plan *p, int sync_fd, int outp[2], int errp[2],
                            int cons[2])
{
    if (p->console_to_monitor) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cons) != 0)
            llmos_fail(sync_fd, STEP_CONSOLE, errno, "socketpair");
    } else if (p->log_file != NULL &&
               (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0)) {
        llmos_fail(sync_fd, STEP_FORK, errno, "pipe");
    }
}

__attribute__((noreturn))
static void become_shim(const struct llmos_plan *p, int sync_fd, pid_t child, int outp[2],
                        int errp[2], int cons[2]);

__attribute__((noreturn))
static void monitor(const struct llmos_plan *p, int sync_fd)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, go[2], cons[2] = {-1, -1};
    output_channels(p, sync_fd, outp, errp, cons);
    if (pipe2(go, O_CLOEXEC) != 0)
        llmos_fail(sync_fd, STEP_FORK, errno, "pipe");
    /* A pid namespace is joined by the parent: it applies to children only. */
    join_namespaces(p, sync_fd, 1);
    int into_cgroup;
    pid_t child = clone_container(p, &into_cgroup);
    if (child == 0) {
        close(go[1]);
        if (outp[0] >= 0) {
            close(outp[0]);
            close(errp[0]);
        }
        if (cons[0] >= 0)
            close(cons[0]);
        container_child(p, sync_fd, go[0], outp[1], errp[1], cons[1]);
    }
    if (child < 0)
        llmos_fail(sync_fd, STEP_CLONE, errno, "clone");
    close(go[0]);
    if (p->clone_flags & CLONE_NEWUSER) {
        if (p->deny_setgroups && write_idmap(child, "setgroups", "deny") != 0)
            kill_and_fail(child, sync_fd, STEP_IDMAP, errno, "write setgroups");
        if (p->uid_map && write_idmap(child, "uid_map", p->uid_map) != 0)
            kill_and_fail(child, sync_fd, STEP_IDMAP, errno, "write uid_map");
        if (p->gid_map && write_idmap(child, "gid_map", p->gid_map) != 0)
            kill_and_fail(child, sync_fd, STEP_IDMAP, errno, "write gid_map");
    }
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)child);
    for (int i = 0; i < p->n_cgroup_procs; i++) {
        if (into_cgroup && p->cgroup_v2_dir != NULL &&
            strncmp(p->cgroup_procs[i], p->cgroup_v2_dir, strlen(p->cgroup_v2_dir)) == 0)
            continue;
        if (llmos_write_file(p->cgroup_procs[i], pidbuf) != 0) {
            char what[600];
            snprintf(what, sizeof what, "add pid %d to %s", (int)child, p->cgroup_procs[i]);
            kill_and_fail(child, sync_fd, STEP_CGROUP, errno, what);
        }
    }
    llmos_send(sync_fd, LLMOS_MSG_PID, (int)child, 0, 0, NULL);
    llmos_send(sync_fd, LLMOS_MSG_SHIM, (int)getpid(), 0, 0, NULL);
    if (write(go[1], "1", 1) != 1)
        kill_and_fail(child, sync_fd, STEP_SYNC, errno, "release the container");
    close(go[1]);
    if (outp[1] >= 0) {
        close(outp[1]);
        close(errp[1]);
    }
    become_shim(p, sync_fd, child, outp, errp, cons);
}

/* Hand the container's output (or its pty) to llmos-shim, which this process becomes. */
__attribute__((noreturn))
static void become_shim(const struct llmos_plan *p, int sync_fd, pid_t child, int outp[2],
                        int errp[2], int cons[2])
{
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)child);
    int master = -1;
    if (cons[0] >= 0) {
        close(cons[1]);
        master = receive_master(cons[0]); /* -1 if the child failed before its console step */
        close(cons[0]);
    }
    if (p->shim_path == NULL) {
        /* No monitor wanted (tests of the executor alone): just reap. */
        int st;
        waitpid(child, &st, 0);
        _exit(0);
    }
    /* The shim keeps these pipe ends (or the pty master); everything else is closed on exec. */
    int fds[2] = {master >= 0 ? master : outp[0], master >= 0 ? -1 : errp[0]};
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0 && fcntl(fds[i], F_SETFD, 0) != 0)
            kill_and_fail(child, sync_fd, STEP_SHIM, errno, "fcntl");
    char out_s[16], err_s[16];
    snprintf(out_s, sizeof out_s, "%d", fds[0]);
    snprintf(err_s, sizeof err_s, "%d", fds[1]);
    char *const argv[] = {"llmos-shim", pidbuf, (char *)p->exit_file,
                          (char *)(p->log_file ? p->log_file : "-"), out_s, err_s,
                          master >= 0 && p->attach_socket ? (char *)p->attach_socket : NULL,
                          NULL};
    char *const envp[] = {NULL};
    execve(p->shim_path, argv, envp);
    kill_and_fail(child, sync_fd, STEP_SHIM, errno, "exec shim");
}

struct intermediate_args {
    const struct llmos_plan *plan;
    int sync_fd;
    int other_fd;
    char *stacks; /* the fast path's monitor and child stacks, above the intermediate's */
};

/*
 * The fast path, for a container that starts at once with no user namespace and no hooks
 * (what the engine runs): the monitor and the container child are each made with
 * CLONE_VM|CLONE_VFORK, so nothing copies the caller's address space (a Python process: tens
 * of megabytes of page tables, a millisecond or more per copy and as much again to tear it
 * down). The chain runs one process at a time: the caller's thread sleeps until the
 * intermediate exits, the intermediate until the monitor has exec'd the shim, the monitor
 * until the child has exec'd the container's program (or failed). Nothing in the chain
 * allocates; each has its own stack; the plan stays alive in the sleeping caller.
 *
 * What needs the monitor while the child runs takes the slow path: an exec FIFO (the child
 * waits for `start`), hooks (the caller runs them while the child waits), user namespace id
 * maps (written from outside).
 */
#define FAST_STACK (1 << 20)

struct fast_child_args {
    const struct llmos_plan *plan;
    int sync_fd;
    int out_w, err_w, cons_w;
};

static int fast_child(void *raw)
{
    struct fast_child_args *a = raw;
    container_child(a->plan, a->sync_fd, -1, a->out_w, a->err_w, a->cons_w);
}

__attribute__((noreturn))
static void fast_monitor(const struct llmos_plan *p, int sync_fd, char *stacks)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, cons[2] = {-1, -1};
    output_channels(p, sync_fd, outp, errp, cons);
    join_namespaces(p, sync_fd, 1);
    struct fast_child_args ca = {.plan = p, .sync_fd = sync_fd, .out_w = outp[1],
                                 .err_w = errp[1], .cons_w = cons[1]};
    unsigned long flags = (unsigned long)(p->clone_flags & ~(unsigned long long)CLONE_NEWCGROUP);
    llmos_exec_reached = 0;
    pid_t child = clone(fast_child, stacks + 2 * FAST_STACK,
                        (int)(flags | CLONE_VM | CLONE_VFORK | SIGCHLD), &ca);
    if (child < 0)
        llmos_fail(sync_fd, STEP_CLONE, errno, "clone");
    if (!llmos_exec_reached) {
        /* It failed a step and said which; no shim, so nothing records an exit. */
        waitpid(child, NULL, 0);
        _exit(1);
    }
    llmos_send(sync_fd, LLMOS_MSG_PID, (int)child, 0, 0, NULL);
    llmos_send(sync_fd, LLMOS_MSG_SHIM, (int)getpid(), 0, 0, NULL);
    if (outp[1] >= 0) {
        close(outp[1]);
        close(errp[1]);
    }
    become_shim(p, sync_fd, child, outp, errp, cons);
}

struct fast_monitor_args {
    const struct llmos_plan *plan;
    int sync_fd;
    char *stacks;
};

static int fast_monitor_entry(void *raw)
{
    struct fast_monitor_args *a = raw;
    fast_monitor(a->plan, a->sync_fd, a->stacks);
}

static int use_fast_path(const struct llmos_plan *p)
{
    return p->exec_fifo == NULL && !p->hooks_sync && !(p->clone_flags & CLONE_NEWUSER);
}

/*
 * The intermediate runs in the caller's memory (CLONE_VM|CLONE_VFORK, on its own stack), so
 * detaching the monitor costs one copy of the caller's address space instead of two: a
 * Python process is tens of megabytes of page tables, and each copy and teardown is about a
 * millisecond here. It only touches its own stack, and the caller sleeps until it exits.
 */
static int intermediate(void *raw)
{
    struct intermediate_args *a = raw;
    close(a->other_fd);
    /* Default signal dispositions: the caller (Python) may ignore SIGPIPE etc. */
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    if (use_fast_path(a->plan)) {
        struct fast_monitor_args ma = {.plan = a->plan, .sync_fd = a->sync_fd,
                                       .stacks = a->stacks};
        if (clone(fast_monitor_entry, a->stacks + FAST_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD,
                  &ma) < 0)
            llmos_fail(a->sync_fd, STEP_FORK, errno, "clone monitor");
        _exit(0);
    }
    /* A raw clone, not fork(): no atfork handlers may run in memory shared with Python. */
    long mon = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (mon < 0)
        llmos_fail(a->sync_fd, STEP_FORK, errno, "fork monitor");
    if (mon > 0)
        _exit(0);
    monitor(a->plan, a->sync_fd);
}

#define INTERMEDIATE_STACK (1 << 20)

int llmos_spawn(const struct llmos_plan *p)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
        return -1;
    /* Untouched pages cost nothing: the stack is big enough for the deepest path walk. */
    char *stack = mmap(NULL, INTERMEDIATE_STACK + 2 * FAST_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        int saved = errno;
        close(sp[0]);
        close(sp[1]);
        errno = saved;
        return -1;
    }
    struct intermediate_args args = {.plan = p, .sync_fd = sp[1], .other_fd = sp[0],
                                     .stacks = stack + INTERMEDIATE_STACK};
    int saved_errno = errno;
    pid_t mid = clone(intermediate, stack + INTERMEDIATE_STACK,
                      CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    int clone_errno = errno;
    errno = saved_errno; /* the intermediate ran on this thread's errno */
    if (mid < 0) {
        munmap(stack, INTERMEDIATE_STACK + 2 * FAST_STACK);
        close(sp[0]);
        close(sp[1]);
        errno = clone_errno;
        return -1;
    }
    close(sp[1]);
    int st;
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
        ;
    munmap(stack, INTERMEDIATE_STACK + 2 * FAST_STACK);
    return sp[0];
}

int llmos_exec(const struct llmos_plan *p, int *sync_out)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
        return -1;
    pid_t mid = fork();
    if (mid < 0) {
        int saved = errno;
        close(sp[0]);
        close(sp[1]);
        errno = saved;
        return -1;
    }
    if (mid == 0) {
        close(sp[0]);
        llmos_exec_child(p, sp[1]);
    }
    close(sp[1]);
    *sync_out = sp[0];
    return mid;
}
