/*
 * Network namespaces made before their container: the engine wires a namespace (veth,
 * address, routes, published ports) first, then starts the container into it by path, which
 * lets the container start at once on spawn's fast path instead of being created, paused
 * for the wiring, and started.
 *
 * The namespace is kept alive by a bind mount of its nsfs file (as `ip netns add` does), made
 * from the calling thread: unshare(CLONE_NEWNET) applies to that thread alone, which then
 * returns to the namespace it was in. No process is forked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include "llmos.h"

int llmos_netns_new(const char *path)
{
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return -1;
    int err = 0;
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) {
        err = errno;
        close(self);
        errno = err;
        return -1;
    }
    close(fd);
    if (unshare(CLONE_NEWNET) != 0) {
        err = errno;
    } else {
        if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) != 0)
            err = errno;
        if (setns(self, CLONE_NEWNET) != 0 && err == 0)
            err = errno; /* cannot happen for root going back; reported all the same */
    }
    close(self);
    if (err != 0) {
        unlink(path);
        errno = err;
        return -1;
    }
    return 0;
}

int llmos_netns_remove(const char *path)
{
    if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT)
        return -1;
    return 0;
}
