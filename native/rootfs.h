#ifndef LLMOS_ROOTFS_H
#define LLMOS_ROOTFS_H

#include "steps.h"

int llmos_open_in_root(int rootfd, const char *path, int create, int is_file);
void llmos_mount_rootfs(const struct llmos_plan *p, int sync_fd);
void llmos_do_mounts(const struct llmos_plan *p, int rootfd, int sync_fd);
void llmos_make_devices(const struct llmos_plan *p, int rootfd, int sync_fd);
void llmos_pivot_root(const struct llmos_plan *p, int sync_fd);
void llmos_mask_paths(const struct llmos_plan *p, int sync_fd);
void llmos_write_sysctls(const struct llmos_plan *p, int sync_fd);

#endif
