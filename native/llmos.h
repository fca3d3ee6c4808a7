/*
 * llmos native core: the executor of a container plan made in Python.
 *
 * Python (llmos/plan.py) decides everything: which namespaces, which mounts in which order,
 * which capabilities, the seccomp BPF program. This code only carries the plan out between
 * clone and execve, where Python cannot run (a forked child of a threaded interpreter must
 * not run Python), and reports the first failing step as (step, errno, message).
 *
 * This header is also fed to cffi's cdef (llmos/_native), so it holds plain declarations only.
 */

struct llmos_mount {
    const char *source;          /* NULL for none */
    const char *target;          /* absolute path inside the container (resolved in rootfs) */
    const char *fstype;          /* NULL for bind mounts */
    unsigned long flags;         /* MS_* for the first mount(2) */
    const char *data;            /* fs options, NULL for none */
    unsigned long propagation;   /* MS_PRIVATE/MS_SLAVE/... (with MS_REC) applied after, or 0 */
    unsigned long remount_flags; /* nonzero: bind-remount with these flags (e.g. read-only) */
    int is_file;                 /* create the target as a file (bind mounts of files) */
};

struct llmos_device {
    const char *path;            /* absolute path inside the container */
    unsigned int mode;           /* S_IFCHR / S_IFBLK / S_IFIFO | permission bits */
    unsigned int major;
    unsigned int minor;
    unsigned int uid;
    unsigned int gid;
    int bind;                    /* bind the host node instead of mknod (user namespaces) */
};

struct llmos_symlink {
    const char *target;          /* what the link points to */
    const char *linkpath;        /* absolute path inside the container */
};

struct llmos_kv {
    const char *key;
    const char *value;
};

struct llmos_rlimit {
    int resource;
    unsigned long long soft;
    unsigned long long hard;
};

struct llmos_plan {
    /* namespaces */
    unsigned long long clone_flags;  /* CLONE_NEW* to create */
    int n_join;                      /* namespaces to join by path (setns) */
    const char **join_paths;
    int *join_types;                 /* CLONE_NEW* of each path */
    const char *uid_map;             /* written by the parent when a user namespace is made */
    const char *gid_map;
    int deny_setgroups;

    /* cgroups */
    const char *cgroup_v2_dir;       /* for clone3(CLONE_INTO_CGROUP), NULL if none */
    int n_cgroup_procs;              /* cgroup.procs files the pid is written into */
    const char **cgroup_procs;

    /* filesystem */
    const char *hostname;            /* NULL: leave as is */
    const char *domainname;
    unsigned long root_propagation;  /* applied to "/" first (MS_REC|MS_SLAVE default) */
    const char *rootfs;              /* absolute host path */
    int n_rootfs_mounts;             /* mounts that make the rootfs (overlay), targets on host */
    struct llmos_mount *rootfs_mounts;
    const char *rootfs_mount_cwd;    /* chdir here first so overlay lowerdirs can be relative */
    int n_mounts;
    struct llmos_mount *mounts;
    int n_devices;
    struct llmos_device *devices;
    int n_symlinks;
    struct llmos_symlink *symlinks;
    unsigned long rootfs_propagation;/* linux.rootfsPropagation after pivot_root, 0 = none */
    int n_masked;
    const char **masked_paths;
    int n_readonly;
    const char **readonly_paths;
    int readonly_root;
    int n_sysctls;
    struct llmos_kv *sysctls;        /* key is a path below /proc/sys, e.g. net/ipv4/ip_forward */

    /* process */
    const char *cwd;
    const char *exec_path;           /* execute this file (hooks); NULL: argv[0] looked up in PATH */
    char *const *argv;
    char *const *envp;
    int set_umask;
    unsigned int umask;
    int set_oom_score_adj;
    int oom_score_adj;
    int n_rlimits;
    struct llmos_rlimit *rlimits;
    int personality;                 /* -1: leave as is */
    unsigned int uid;
    unsigned int gid;
    int n_groups;
    unsigned int *groups;
    int set_caps;
    unsigned long long cap_bounding;
    unsigned long long cap_effective;
    unsigned long long cap_permitted;
    unsigned long long cap_inheritable;
    unsigned long long cap_ambient;
    int no_new_privs;
    unsigned int seccomp_len;        /* number of sock_filter instructions, 0 = no filter */
    const unsigned char *seccomp_prog;
    unsigned int seccomp_flags;      /* SECCOMP_FILTER_FLAG_* */

    /* stdio and synchronisation */
    int stdio[3];                    /* fds to become 0,1,2; -1 = inherit the caller's */
    const char *console_socket;      /* send a pty master here (runc's --console-socket) */
    int console_to_monitor;          /* or give it to llmos-shim, which serves attach_socket */
    const char *attach_socket;
    int console_rows;
    int console_cols;
    const char *exec_fifo;           /* wait for `start` by opening this FIFO; NULL = run now */
    int hooks_sync;                  /* stop before pivot_root for createRuntime/createContainer */
    int loopback_up;                 /* bring "lo" up in a new network namespace (engine) */
    int n_preserve_fds;              /* fds 3..3+n-1 stay open into the container */

    /* monitor */
    const char *shim_path;           /* the llmos-shim binary */
    const char *exit_file;           /* where the shim records the exit status */
    const char *log_file;            /* CRI-format log of stdout/stderr, NULL = stdio as given */
    int log_stdin_null;

    /* exec into a running container: join its namespaces instead of creating any */
    int join_pid;
};

/* Messages on the sync socket, child -> caller. */
struct llmos_msg {
    int type;
    int pid;
    int step;
    int err;
    char text[496];
};

#define LLMOS_MSG_PID 1     /* pid of the container (host pid namespace) */
#define LLMOS_MSG_HOOKS 2   /* paused before pivot_root: run hooks, then write one byte */
#define LLMOS_MSG_READY 3   /* created: waiting on the exec fifo */
#define LLMOS_MSG_ERROR 4   /* a step failed: step, err, text */
#define LLMOS_MSG_SHIM 5    /* pid of the shim, when it differs from the caller's child */

/*
 * Start the container described by the plan. Returns the caller's end of the sync socket
 * (SOCK_SEQPACKET), from which LLMOS_MSG_* arrive until EOF; EOF without an error means the
 * process was executed (or, with exec_fifo, is waiting). Returns -1 with errno on failure to
 * even fork. The monitor is detached: the caller never has to reap it.
 */
int llmos_spawn(const struct llmos_plan *plan);

/*
 * Run a process inside the namespaces of plan->join_pid. The returned pid is the caller's
 * direct child, whose exit status is the process's; messages as for llmos_spawn on *sync_fd.
 */
int llmos_exec(const struct llmos_plan *plan, int *sync_fd);

/*
 * A new network namespace held by a bind mount at `path` (created; must not exist), made
 * without leaving the calling thread's own namespace. 0, or -1 with errno.
 */
int llmos_netns_new(const char *path);

/* Unmount and unlink what llmos_netns_new made; fine if it is gone. 0, or -1 with errno. */
int llmos_netns_remove(const char *path);

/* The name of a step number, for messages. */
const char *llmos_step_name(int step);

/* Open a pidfd (0 flags) or -1 with errno. */
int llmos_pidfd_open(int pid);
int llmos_pidfd_send_signal(int pidfd, int sig);
