/*
 * The last steps before execve, shared by a container's first process and by exec:
 * cwd, oom_score_adj, rlimits, personality, user and groups, capabilities, no_new_privs,
 * seccomp (last of the security steps), wait for start, execve.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "steps.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static const char *const rlimit_names[] = {
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
    "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
    "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
};

static const char *rlimit_name(int r)
{
    if (r >= 0 && (size_t)r < sizeof rlimit_names / sizeof rlimit_names[0])
        return rlimit_names[r];
    return "RLIMIT_?";
}

static void mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(buf, 0755);
            *s = '/';
        }
    }
    mkdir(buf, 0755);
}

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp != NULL && *envp != NULL; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/*
 * Resolve argv[0] the way execvp would, but with the container's PATH and before the start
 * signal, so that a missing executable fails `create`, not a later `start` nobody watches.
 */
static void resolve_exec(const struct llmos_plan *p, int sync_fd, char *out, size_t outlen)
{
    if (p->exec_path != NULL) {
        snprintf(out, outlen, "%s", p->exec_path);
        return;
    }
    const char *name = p->argv[0];
    if (name == NULL || name[0] == 0)
        llmos_fail(sync_fd, STEP_EXEC, EINVAL, "exec: empty command");
    if (strchr(name, '/') != NULL) {
        snprintf(out, outlen, "%s", name);
        if (access(out, X_OK) != 0)
            llmos_fail(sync_fd, STEP_EXEC, errno, "exec %s", name);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
            llmos_fail(sync_fd, STEP_EXEC, EACCES, "exec %s: is a directory", name);
        return;
    }
    const char *path = env_get(p->envp, "PATH");
    if (path == NULL)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int saw_eacces = 0;
    while (*path) {
        const char *colon = strchrnul(path, ':');
        size_t dlen = (size_t)(colon - path);
        if (dlen == 0)
            snprintf(out, outlen, "%s", name);
        else
            snprintf(out, outlen, "%.*s/%s", (int)dlen, path, name);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(out, X_OK) == 0)
                return;
            saw_eacces = 1;
        }
        path = *colon ? colon + 1 : colon;
    }
    if (saw_eacces)
        llmos_fail(sync_fd, STEP_EXEC, EACCES, "exec %s", name);
    /* Docker's wording, and its exit code 127. */
    char text[480];
    snprintf(text, sizeof text, "exec: \"%.200s\": executable file not found in $PATH", name);
    llmos_fail_raw(sync_fd, STEP_EXEC, ENOENT, text);
}

static void set_rlimits(const struct llmos_plan *p, int sync_fd)
{
    for (int i = 0; i < p->n_rlimits; i++) {
        struct rlimit rl = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
        if (setrlimit(p->rlimits[i].resource, &rl) != 0) {
            int e = errno;
            if (e == EPERM)
                llmos_fail(sync_fd, STEP_RLIMITS, e,
                           "setrlimit %s soft=%llu hard=%llu (raising a hard limit needs "
                           "CAP_SYS_RESOURCE, which this process lacks)",
                           rlimit_name(p->rlimits[i].resource), p->rlimits[i].soft,
                           p->rlimits[i].hard);
            llmos_fail(sync_fd, STEP_RLIMITS, e, "setrlimit %s",
                       rlimit_name(p->rlimits[i].resource));
        }
    }
}

static void set_user(const struct llmos_plan *p, int sync_fd)
{
    if (p->set_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
        llmos_fail(sync_fd, STEP_USER, errno, "prctl(PR_SET_KEEPCAPS)");
    if (!p->deny_setgroups) {
        if (setgroups((size_t)p->n_groups, (const gid_t *)p->groups) != 0)
            llmos_fail(sync_fd, STEP_USER, errno, "setgroups");
    }
    if (setresgid(p->gid, p->gid, p->gid) != 0)
        llmos_fail(sync_fd, STEP_USER, errno, "setresgid %u", p->gid);
    if (setresuid(p->uid, p->uid, p->uid) != 0)
        llmos_fail(sync_fd, STEP_USER, errno, "setresuid %u", p->uid);
    if (p->set_caps && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0)
        llmos_fail(sync_fd, STEP_USER, errno, "prctl(PR_SET_KEEPCAPS, 0)");
}

static void drop_bounding(const struct llmos_plan *p, int sync_fd)
{
    for (int cap = 0; cap < 64; cap++) {
        if (p->cap_bounding & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL)
                break; /* past the kernel's last capability */
            llmos_fail(sync_fd, STEP_CAPS, errno, "drop capability %d from the bounding set", cap);
        }
    }
}

static void set_caps(const struct llmos_plan *p, int sync_fd)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (int i = 0; i < 2; i++) {
        data[i].effective = (unsigned int)(p->cap_effective >> (32 * i));
        data[i].permitted = (unsigned int)(p->cap_permitted >> (32 * i));
        data[i].inheritable = (unsigned int)(p->cap_inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) != 0)
        llmos_fail(sync_fd, STEP_CAPS, errno, "capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        llmos_fail(sync_fd, STEP_CAPS, errno, "clear ambient capabilities");
    for (int cap = 0; cap < 64; cap++) {
        if (!(p->cap_ambient & (1ULL << cap)))
            continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
            llmos_fail(sync_fd, STEP_CAPS, errno, "raise ambient capability %d", cap);
    }
}

static void load_seccomp(const struct llmos_plan *p, int sync_fd)
{
    struct sock_fprog prog = {
        .len = (unsigned short)p->seccomp_len,
        .filter = (struct sock_filter *)p->seccomp_prog,
    };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog) != 0)
        llmos_fail(sync_fd, STEP_SECCOMP, errno, "seccomp(SECCOMP_SET_MODE_FILTER)");
}

void llmos_finish_process(const struct llmos_plan *p, int sync_fd, int fifo_fd)
{
    if (p->cwd != NULL && p->cwd[0] != 0) {
        if (chdir(p->cwd) != 0) {
            if (errno != ENOENT)
                llmos_fail(sync_fd, STEP_CWD, errno, "chdir %s", p->cwd);
            mkdir_p(p->cwd);
            if (chdir(p->cwd) != 0)
                llmos_fail(sync_fd, STEP_CWD, errno, "chdir %s", p->cwd);
        }
    }
    if (p->set_umask)
        umask((mode_t)p->umask);
    if (p->set_oom_score_adj) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", p->oom_score_adj);
        if (llmos_write_file("/proc/self/oom_score_adj", buf) != 0)
            llmos_fail(sync_fd, STEP_OOM_SCORE, errno, "write /proc/self/oom_score_adj=%s", buf);
    }
    set_rlimits(p, sync_fd);
    if (p->personality >= 0 && personality((unsigned long)p->personality) < 0)
        llmos_fail(sync_fd, STEP_PERSONALITY, errno, "personality %d", p->personality);
    /*
     * Without no_new_privs the kernel only lets a process holding CAP_SYS_ADMIN load a
     * filter, so then it goes in before the capabilities are dropped (as runc does); the
     * filter must allow what follows (setgroups, setresuid, capset, prctl), which Docker's
     * profile does. With no_new_privs it comes last, as late as possible.
     */
    int seccomp_early = !p->no_new_privs && p->seccomp_len > 0;
    if (seccomp_early)
        load_seccomp(p, sync_fd);
    if (p->set_caps)
        drop_bounding(p, sync_fd);
    set_user(p, sync_fd);
    if (p->set_caps)
        set_caps(p, sync_fd);
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        llmos_fail(sync_fd, STEP_NO_NEW_PRIVS, errno, "prctl(PR_SET_NO_NEW_PRIVS)");

    char exe[4096];
    resolve_exec(p, sync_fd, exe, sizeof exe);

    if (p->seccomp_len > 0 && !seccomp_early)
        load_seccomp(p, sync_fd);
    if (fifo_fd >= 0) {
        /* Tell the caller of `create` we are ready, then block until `start` opens the FIFO. */
        llmos_send(sync_fd, LLMOS_MSG_READY, 0, 0, 0, NULL);
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fifo_fd);
        int w = open(path, O_WRONLY | O_CLOEXEC);
        if (w < 0)
            llmos_fail(sync_fd, STEP_WAIT_START, errno, "open exec fifo");
        if (write(w, "0", 1) != 1)
            llmos_fail(sync_fd, STEP_WAIT_START, errno, "write exec fifo");
        close(w);
        close(fifo_fd);
    }
    llmos_exec_reached = 1;
    execve(exe, p->argv, p->envp);
    int err = errno;
    llmos_exec_reached = 0;
    llmos_fail(sync_fd, STEP_EXEC, err, "exec %s", exe);
}
