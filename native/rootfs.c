/*
 * Filesystem steps of the container child: rootfs, mounts, devices, pivot_root, masked and
 * read-only paths. Every path inside the container is resolved with openat2(RESOLVE_IN_ROOT)
 * against the rootfs, so a symlink in an image can never point a mount outside of it; the
 * mount then targets the resolved inode through /proc/self/fd/N.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "rootfs.h"

static int openat2_in_root(int rootfd, const char *rel)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof how);
}

/* Open `path` (absolute inside the root) as O_PATH, creating what is missing. */
int llmos_open_in_root(int rootfd, const char *path, int create, int is_file)
{
    const char *rel = path;
    while (*rel == '/')
        rel++;
    int fd = openat2_in_root(rootfd, rel);
    if (fd >= 0 || errno != ENOENT || !create)
        return fd;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", rel);
    char *slash = strrchr(parent, '/');
    const char *name;
    int pfd;
    if (slash == NULL) {
        name = rel;
        pfd = openat2_in_root(rootfd, "");
    } else {
        *slash = 0;
        name = rel + (slash - parent) + 1;
        pfd = llmos_open_in_root(rootfd, parent, 1, 0);
    }
    if (pfd < 0)
        return -1;
    int rc;
    if (is_file) {
        rc = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (rc >= 0)
            close(rc);
    } else {
        rc = mkdirat(pfd, name, 0755);
    }
    int saved = errno;
    close(pfd);
    if (rc < 0 && saved != EEXIST) {
        errno = saved;
        return -1;
    }
    return openat2_in_root(rootfd, rel);
}

static void fdpath(char *buf, size_t len, int fd)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
}

void llmos_mount_rootfs(const struct llmos_plan *p, int sync_fd)
{
    if (p->n_rootfs_mounts > 0) {
        if (p->rootfs_mount_cwd != NULL && chdir(p->rootfs_mount_cwd) != 0)
            llmos_fail(sync_fd, STEP_ROOTFS, errno, "chdir %s", p->rootfs_mount_cwd);
        for (int i = 0; i < p->n_rootfs_mounts; i++) {
            const struct llmos_mount *m = &p->rootfs_mounts[i];
            if (mount(m->source, m->target, m->fstype, m->flags, m->data) != 0)
                llmos_fail(sync_fd, STEP_ROOTFS, errno, "mount %s on %s",
                           m->fstype ? m->fstype : "bind", m->target);
        }
    } else if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) != 0) {
        llmos_fail(sync_fd, STEP_ROOTFS, errno, "bind rootfs %s", p->rootfs);
    }
    /* pivot_root refuses a new root whose mount is shared. */
    if (mount(NULL, p->rootfs, NULL, MS_PRIVATE, NULL) != 0)
        llmos_fail(sync_fd, STEP_ROOTFS, errno, "make rootfs %s private", p->rootfs);
}

void llmos_do_mounts(const struct llmos_plan *p, int rootfd, int sync_fd)
{
    char proc[64];
    for (int i = 0; i < p->n_mounts; i++) {
        const struct llmos_mount *m = &p->mounts[i];
        int fd = llmos_open_in_root(rootfd, m->target, 1, m->is_file);
        if (fd < 0)
            llmos_fail(sync_fd, STEP_MOUNTS, errno, "create mount point %s", m->target);
        fdpath(proc, sizeof proc, fd);
        int rc = mount(m->source, proc, m->fstype, m->flags, m->data);
        int saved = errno;
        close(fd);
        if (rc != 0)
            llmos_fail(sync_fd, STEP_MOUNTS, saved, "mount %s (%s) on %s",
                       m->source ? m->source : "none", m->fstype ? m->fstype : "bind",
                       m->target);
        if (m->remount_flags == 0 && m->propagation == 0)
            continue;
        /* Re-resolve: the fd we held points below the new mount, not at it. */
        fd = llmos_open_in_root(rootfd, m->target, 0, 0);
        if (fd < 0)
            llmos_fail(sync_fd, STEP_MOUNTS, errno, "reopen %s", m->target);
        fdpath(proc, sizeof proc, fd);
        if (m->remount_flags != 0 &&
            mount(NULL, proc, NULL, MS_REMOUNT | MS_BIND | m->remount_flags, NULL) != 0) {
            saved = errno;
            close(fd);
            llmos_fail(sync_fd, STEP_MOUNTS, saved, "remount %s", m->target);
        }
        if (m->propagation != 0 && mount(NULL, proc, NULL, m->propagation, NULL) != 0) {
            saved = errno;
            close(fd);
            llmos_fail(sync_fd, STEP_MOUNTS, saved, "set propagation of %s", m->target);
        }
        close(fd);
    }
}

static int open_parent(int rootfd, const char *path, const char **name)
{
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL) {
        *name = path;
        return llmos_open_in_root(rootfd, "/", 0, 0);
    }
    *slash = 0;
    *name = path + (slash - parent) + 1;
    return llmos_open_in_root(rootfd, parent[0] ? parent : "/", 1, 0);
}

void llmos_make_devices(const struct llmos_plan *p, int rootfd, int sync_fd)
{
    char proc[64];
    for (int i = 0; i < p->n_devices; i++) {
        const struct llmos_device *d = &p->devices[i];
        if (d->bind) {
            int fd = llmos_open_in_root(rootfd, d->path, 1, 1);
            if (fd < 0)
                llmos_fail(sync_fd, STEP_DEVICES, errno, "create %s", d->path);
            fdpath(proc, sizeof proc, fd);
            int rc = mount(d->path, proc, NULL, MS_BIND, NULL);
            int saved = errno;
            close(fd);
            if (rc != 0)
                llmos_fail(sync_fd, STEP_DEVICES, saved, "bind device %s", d->path);
            continue;
        }
        const char *name;
        int pfd = open_parent(rootfd, d->path, &name);
        if (pfd < 0)
            llmos_fail(sync_fd, STEP_DEVICES, errno, "open parent of %s", d->path);
        unlinkat(pfd, name, 0);
        if (mknodat(pfd, name, d->mode, makedev(d->major, d->minor)) != 0) {
            int saved = errno;
            close(pfd);
            llmos_fail(sync_fd, STEP_DEVICES, saved, "mknod %s", d->path);
        }
        /* mknod honours the umask; the spec's mode must hold exactly. */
        if (fchmodat(pfd, name, d->mode & 07777, 0) != 0 ||
            fchownat(pfd, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) != 0) {
            int saved = errno;
            close(pfd);
            llmos_fail(sync_fd, STEP_DEVICES, saved, "chmod/chown %s", d->path);
        }
        close(pfd);
    }
    for (int i = 0; i < p->n_symlinks; i++) {
        const struct llmos_symlink *s = &p->symlinks[i];
        const char *name;
        int pfd = open_parent(rootfd, s->linkpath, &name);
        if (pfd < 0)
            llmos_fail(sync_fd, STEP_DEVICES, errno, "open parent of %s", s->linkpath);
        int rc = symlinkat(s->target, pfd, name);
        int saved = errno;
        close(pfd);
        if (rc != 0 && saved != EEXIST)
            llmos_fail(sync_fd, STEP_DEVICES, saved, "symlink %s -> %s", s->linkpath, s->target);
    }
}

void llmos_pivot_root(const struct llmos_plan *p, int sync_fd)
{
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "open /");
    int newroot = open(p->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (newroot < 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "open %s", p->rootfs);
    if (fchdir(newroot) != 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "chdir %s", p->rootfs);
    /* pivot_root(".", ".") stacks the old root on the new one; detach it right away. */
    if (syscall(SYS_pivot_root, ".", ".") != 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "pivot_root %s", p->rootfs);
    if (fchdir(oldroot) != 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "chdir old root");
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) != 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "make old root slave");
    if (umount2(".", MNT_DETACH) != 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "detach old root");
    if (chdir("/") != 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "chdir /");
    close(oldroot);
    close(newroot);
    if (p->rootfs_propagation != 0 && mount(NULL, "/", NULL, p->rootfs_propagation, NULL) != 0)
        llmos_fail(sync_fd, STEP_PIVOT_ROOT, errno, "set rootfs propagation");
}

static unsigned long kept_flags(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        return 0;
    /* ST_* and MS_* share their values for these bits. */
    return sv.f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME |
                        MS_RELATIME);
}

void llmos_mask_paths(const struct llmos_plan *p, int sync_fd)
{
    for (int i = 0; i < p->n_masked; i++) {
        const char *path = p->masked_paths[i];
        struct stat st;
        if (lstat(path, &st) != 0) {
            if (errno == ENOENT)
                continue;
            llmos_fail(sync_fd, STEP_MASKED, errno, "stat %s", path);
        }
        int rc;
        if (S_ISDIR(st.st_mode))
            rc = mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0k");
        else
            rc = mount("/dev/null", path, NULL, MS_BIND, NULL);
        if (rc != 0)
            llmos_fail(sync_fd, STEP_MASKED, errno, "mask %s", path);
    }
    for (int i = 0; i < p->n_readonly; i++) {
        const char *path = p->readonly_paths[i];
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) != 0) {
            if (errno == ENOENT)
                continue;
            llmos_fail(sync_fd, STEP_READONLY, errno, "bind %s", path);
        }
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(path),
                  NULL) != 0)
            llmos_fail(sync_fd, STEP_READONLY, errno, "remount %s read-only", path);
    }
    if (p->readonly_root &&
        mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags("/"), NULL) != 0)
        llmos_fail(sync_fd, STEP_READONLY, errno, "remount / read-only");
}

void llmos_write_sysctls(const struct llmos_plan *p, int sync_fd)
{
    char path[4096];
    for (int i = 0; i < p->n_sysctls; i++) {
        snprintf(path, sizeof path, "/proc/sys/%s", p->sysctls[i].key);
        if (llmos_write_file(path, p->sysctls[i].value) != 0)
            llmos_fail(sync_fd, STEP_SYSCTL, errno, "sysctl %s=%s", p->sysctls[i].key,
                       p->sysctls[i].value);
    }
}
