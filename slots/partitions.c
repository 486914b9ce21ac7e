/* SPDX-License-Identifier: MIT */
/* Thin adapter: finds a slot's partitions with libblkid. The sysfs and /dev
 * directories are parameters so the code runs on test images too. */

#include <blkid.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "../common/macro.h"
#include "slots.h"

static void blkid_free_probep(blkid_probe *pr) {
        if (*pr)
                blkid_free_probe(*pr);
}
static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static bool sysfs_exists(const char *sysfs, const char *dev, const char *file) {
        char p[512];
        (void) snprintf(p, sizeof(p), "%s/%s/%s", sysfs, dev, file);
        return access(p, F_OK) == 0;
}

/* The kernel name of partition partno of disk (vda + 2 -> vda2, nvme0n1 + 2 -> nvme0n1p2),
 * confirmed by the partition's own sysfs "partition" file. The kernel names
 * a partition after its disk, with a "p" when the disk's name ends in a
 * digit (block/partitions/core.c, add_partition); both spellings are tried,
 * so the answer never rests on that rule alone, and a readdir of the disk's
 * directory (some 30 entries, each an open under emulation) is the fallback. */
static bool partition_has_number(const char *sysfs, const char *disk, const char *name, int partno) {
        char f[768], buf[16];
        (void) snprintf(f, sizeof(f), "%s/%s/%s/partition", sysfs, disk, name);
        _cleanup_close_ int fd = open(f, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return false;
        buf[n] = 0;
        return atoi(buf) == partno;
}

static int partition_name(const char *sysfs, const char *disk, int partno, char *ret, size_t size) {
        char p[512], guess[300];
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        for (int i = 0; i < 2; i++) {
                (void) snprintf(guess, sizeof(guess), "%s%s%d", disk, i ? "p" : "", partno);
                if (partition_has_number(sysfs, disk, guess, partno)) {
                        (void) snprintf(ret, size, "%s", guess);
                        return 0;
                }
        }

        (void) snprintf(p, sizeof(p), "%s/%s", sysfs, disk);
        d = opendir(p);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (partition_has_number(sysfs, disk, de->d_name, partno)) {
                        (void) snprintf(ret, size, "%s", de->d_name);
                        return 0;
                }
        }
        return -ENOENT;
}

struct found_slot {
        bool data, hash;
        unsigned data_no, hash_no;
        uint64_t data_start, data_size, hash_start, hash_size;
        char data_type[40], hash_type[40], data_uuid[40];
        uint64_t data_attrs;
};

struct found {
        struct found_slot slot[_SLOT_MAX];
        bool esp;
        unsigned esp_no;
        uint64_t esp_start, esp_size;
        char esp_uuid[40];
};

/* Probes the GPT of dev. The ESP is the partition esp_partuuid names, or
 * without one the first EFI System partition. */
static int probe_disk(const char *dev, const char *esp_partuuid, struct found *f) {
        char labels[_SLOT_MAX][2][32];
        _cleanup_(blkid_free_probep) blkid_probe pr = NULL;

        for (int s = 0; s < _SLOT_MAX; s++)
                slot_partition_labels(s, labels[s][0], labels[s][1]);

        pr = blkid_new_probe_from_filename(dev);
        if (!pr)
                return errno > 0 ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 0);
        blkid_probe_enable_partitions(pr, 1);
        /* Only the GPT prober: a slot disk is GPT, and any other table type
         * was refused below anyway. The GPT prober checks the protective
         * MBR itself; the others would each read and parse their own
         * sectors first (under emulation every prober costs). */
        static char *const gpt_only[] = { "gpt", NULL };
        (void) blkid_probe_filter_partitions_type(pr, BLKID_FLTR_ONLYIN, (char **) gpt_only);

        blkid_partlist pl = blkid_probe_get_partitions(pr);
        if (!pl)
                return -ENOENT;
        blkid_parttable pt = blkid_partlist_get_table(pl);
        if (!pt || !streq_ptr(blkid_parttable_get_type(pt), "gpt"))
                return -ENOENT;

        int n = blkid_partlist_numof_partitions(pl);
        for (int i = 0; i < n; i++) {
                blkid_partition par = blkid_partlist_get_partition(pl, i);
                const char *name = blkid_partition_get_name(par);
                const char *type = blkid_partition_get_type_string(par);
                const char *uuid = blkid_partition_get_uuid(par);
                int no = blkid_partition_get_partno(par);

                if (no <= 0)
                        continue;
                bool esp = esp_partuuid ? uuid && strcasecmp(uuid, esp_partuuid) == 0
                                        : !f->esp && type && strcasecmp(type, GPT_ESP) == 0;
                if (esp) {
                        f->esp = true;
                        f->esp_no = (unsigned) no;
                        f->esp_start = (uint64_t) blkid_partition_get_start(par);
                        f->esp_size = (uint64_t) blkid_partition_get_size(par);
                        (void) snprintf(f->esp_uuid, sizeof(f->esp_uuid), "%s", uuid);
                }
                if (!name)
                        continue;
                for (int s = 0; s < _SLOT_MAX; s++) {
                        struct found_slot *fs = &f->slot[s];
                        if (streq(name, labels[s][0])) {
                                fs->data = true;
                                fs->data_no = (unsigned) no;
                                (void) snprintf(fs->data_type, sizeof(fs->data_type), "%s", strna(type));
                                (void) snprintf(fs->data_uuid, sizeof(fs->data_uuid), "%s", uuid ?: "");
                                fs->data_attrs = blkid_partition_get_flags(par);
                                fs->data_start = (uint64_t) blkid_partition_get_start(par);
                                fs->data_size = (uint64_t) blkid_partition_get_size(par);
                        } else if (streq(name, labels[s][1])) {
                                fs->hash = true;
                                fs->hash_no = (unsigned) no;
                                fs->hash_start = (uint64_t) blkid_partition_get_start(par);
                                fs->hash_size = (uint64_t) blkid_partition_get_size(par);
                                (void) snprintf(fs->hash_type, sizeof(fs->hash_type), "%s", strna(type));
                        }
                }
        }
        return 0;
}

/* Our own reading of the GPT, with why for a person when it fails. */
static int read_table(const char *dev, struct gpt_table *ret, char *why, size_t why_size) {
        struct gpt_status st = {};
        int r;

        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                (void) snprintf(why, why_size, "cannot open %s to check its partition table: %s", dev, strerror(-r));
                return r;
        }
        r = gpt_read_table(fd, ret, &st);
        if (r == -EBADMSG)
                (void) snprintf(why, why_size, "%s has no valid GPT copy (primary: %.150s; backup: %.150s); "
                                "restore the table from a backup (sgdisk --load-backup)", dev, st.primary_reason,
                                st.backup_reason);
        else if (r < 0)
                (void) snprintf(why, why_size, "cannot read the partition table of %s: %s", dev, strerror(-r));
        return r;
}

/* Refuses a disk whose partitions abswitch uses (the ESP and every slot
 * partition) overlap each other or any other partition, lie outside the
 * usable area or end before they start: an install would otherwise write
 * over the running slot, the ESP or a data partition. The slot partitions
 * are those libblkid found and any entry with a slot label: libblkid
 * silently drops an entry outside the usable area, which would make a
 * broken slot look merely absent. */
static int check_geometry(const char *dev, const struct found *f, char *why, size_t why_size) {
        char labels[_SLOT_MAX][2][32];
        _cleanup_free_ unsigned *partnos = NULL;
        size_t n = 0;
        struct gpt_table t = {};
        char problem[384];
        int r;

        r = read_table(dev, &t, why, why_size);
        if (r < 0)
                return r;

        partnos = calloc(1 + 2 * _SLOT_MAX + t.n_parts, sizeof(*partnos));
        if (!partnos) {
                gpt_table_done(&t);
                return -ENOMEM;
        }
        if (f->esp)
                partnos[n++] = f->esp_no;
        for (int s = 0; s < _SLOT_MAX; s++) {
                slot_partition_labels(s, labels[s][0], labels[s][1]);
                if (f->slot[s].data)
                        partnos[n++] = f->slot[s].data_no;
                if (f->slot[s].hash)
                        partnos[n++] = f->slot[s].hash_no;
        }
        for (size_t i = 0; i < t.n_parts; i++)
                for (int s = 0; s < _SLOT_MAX; s++)
                        if (streq(t.parts[i].name, labels[s][0]) || streq(t.parts[i].name, labels[s][1]))
                                partnos[n++] = t.parts[i].partno;

        r = gpt_check_geometry(&t, partnos, n, problem, sizeof(problem));
        gpt_table_done(&t);
        if (r == -ENOENT) {
                /* libblkid took a copy our checks refuse, or the copies differ. */
                (void) snprintf(why, why_size, "the partition table of %s is inconsistent: %s, but libblkid "
                                "found it; check both GPT copies (sgdisk --verify %s)", dev, problem, dev);
                return -EBADMSG;
        }
        if (r < 0)
                (void) snprintf(why, why_size, "the partition table of %s is unsafe to use: %s. abswitch writes "
                                "to these partitions and refuses the disk; repair the table (sgdisk --print %s) "
                                "so every partition lies within the usable LBAs and none shares a sector "
                                "with another", dev, problem, dev);
        return r;
}

/* Fills ret for one slot found on disk; -EMEDIUMTYPE or -ENOENT with why. */
static int fill_slot(const char *sysfs, const char *devdir, const char *disk, Slot s, const struct found_slot *f,
                     struct slot_partitions *ret, char *why, size_t why_size) {
        char label_data[32], label_hash[32], pd[256], ph[256];

        slot_partition_labels(s, label_data, label_hash);
        if (!f->data || !f->hash) {
                if (f->data || f->hash)
                        (void) snprintf(why, why_size, "%s/%s has a partition labelled %s but none labelled %s",
                                        devdir, disk, f->data ? label_data : label_hash,
                                        f->data ? label_hash : label_data);
                return -ENOENT;
        }
        if (strcasecmp(f->data_type, GPT_ROOT_X86_64) != 0 || strcasecmp(f->hash_type, GPT_ROOT_X86_64_VERITY) != 0) {
                (void) snprintf(why, why_size,
                                "on %s/%s, %s has type %s and %s has type %s; expected %s and %s "
                                "(Discoverable Partitions root-x86-64 and root-x86-64-verity)",
                                devdir, disk, label_data, f->data_type, label_hash, f->hash_type,
                                GPT_ROOT_X86_64, GPT_ROOT_X86_64_VERITY);
                return -EMEDIUMTYPE;
        }
        if (partition_name(sysfs, disk, (int) f->data_no, pd, sizeof(pd)) < 0 ||
            partition_name(sysfs, disk, (int) f->hash_no, ph, sizeof(ph)) < 0) {
                (void) snprintf(why, why_size, "the kernel has not yet created the partition devices of %s/%s",
                                devdir, disk);
                return -ENOENT;
        }
        *ret = (struct slot_partitions) {
                .present = true,
                .data_partno = f->data_no,
                .hash_partno = f->hash_no,
                .data_attrs = f->data_attrs,
        };
        (void) snprintf(ret->data_dev, sizeof(ret->data_dev), "%s/%s", devdir, pd);
        (void) snprintf(ret->hash_dev, sizeof(ret->hash_dev), "%s/%s", devdir, ph);
        (void) snprintf(ret->data_uuid, sizeof(ret->data_uuid), "%s", f->data_uuid);
        return 0;
}

int slots_find_partitions(const char *sysfs, const char *devdir, Slot s, const char *esp_partuuid,
                          struct slot_layout *ret, char *why, size_t why_size) {
        char label_data[32], label_hash[32];
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        struct slot_layout best = {};
        int candidates = 0, r;

        slot_partition_labels(s, label_data, label_hash);
        (void) snprintf(why, why_size, "no disk has GPT partitions labelled %s and %s", label_data, label_hash);

        d = opendir(sysfs);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                struct found f = {};
                struct slot_layout l = {};
                if (de->d_name[0] == '.')
                        continue;
                /* Whole disks only; device-mapper and loop devices hold no slot. */
                if (sysfs_exists(sysfs, de->d_name, "partition") ||
                    startswith(de->d_name, "dm-") || startswith(de->d_name, "loop") ||
                    startswith(de->d_name, "ram") || startswith(de->d_name, "zram"))
                        continue;
                char dev[320];
                (void) snprintf(dev, sizeof(dev), "%s/%s", devdir, de->d_name);
                if (probe_disk(dev, esp_partuuid, &f) < 0)
                        continue;
                if (!f.slot[s].data && !f.slot[s].hash)
                        continue;
                if (esp_partuuid && !f.esp)
                        continue;

                r = fill_slot(sysfs, devdir, de->d_name, s, &f.slot[s], &l.slot[s], why, why_size);
                if (r == -EMEDIUMTYPE)
                        return r;
                if (r < 0)
                        continue;
                /* Unsafe geometry stops here. A table our own checks cannot
                 * read is left to the state reader, which falls back to what
                 * libblkid saw and writes nothing it cannot validate. */
                r = check_geometry(dev, &f, why, why_size);
                if (r == -EUCLEAN)
                        return r;
                /* The other slot is optional here: absent means never bootable. */
                char other_why[512];
                if (fill_slot(sysfs, devdir, de->d_name, slot_other(s), &f.slot[slot_other(s)],
                              &l.slot[slot_other(s)], other_why, sizeof(other_why)) < 0)
                        l.slot[slot_other(s)] = (struct slot_partitions) {};

                if (++candidates > 1) {
                        (void) snprintf(why, why_size, "both %s and %s/%s have partitions labelled %s; "
                                        "boot through a UKI on one of them (LoaderDevicePartUUID) to choose",
                                        best.disk, devdir, de->d_name, label_data);
                        return -ENOTUNIQ;
                }
                (void) snprintf(l.disk, sizeof(l.disk), "%s/%s", devdir, de->d_name);
                l.esp_present = f.esp;
                l.esp_partno = f.esp_no;
                l.esp_start = f.esp_start;
                l.esp_size = f.esp_size;
                (void) snprintf(l.esp_uuid, sizeof(l.esp_uuid), "%s", f.esp_uuid);
                best = l;
        }
        if (candidates == 0)
                return -ENOENT;

        /* The device node may lag the sysfs entry by a moment (devtmpfs). */
        if (access(best.slot[s].data_dev, F_OK) < 0 || access(best.slot[s].hash_dev, F_OK) < 0) {
                (void) snprintf(why, why_size, "%s or %s has no device node yet", best.slot[s].data_dev,
                                best.slot[s].hash_dev);
                return -ENOENT;
        }
        *ret = best;
        return 0;
}

int slots_read_layout(const char *disk, struct slot_layout *ret, char *why, size_t why_size) {
        struct found f = {};
        struct slot_layout l = {};
        int r = probe_disk(disk, NULL, &f);
        if (r < 0) {
                /* Say why, when it is that no GPT copy passes the checks. */
                struct gpt_table t = {};
                (void) snprintf(why, why_size, "%s has no GPT that libblkid can read", disk);
                if (read_table(disk, &t, why, why_size) == -EBADMSG)
                        return -EBADMSG;
                gpt_table_done(&t);
                (void) snprintf(why, why_size, "%s has no GPT that libblkid can read", disk);
                return r;
        }
        r = check_geometry(disk, &f, why, why_size);
        if (r < 0)
                return r;
        (void) snprintf(l.disk, sizeof(l.disk), "%s", disk);
        for (int s = 0; s < _SLOT_MAX; s++) {
                const struct found_slot *fs = &f.slot[s];
                if (!fs->data || !fs->hash)
                        continue;
                l.slot[s] = (struct slot_partitions) {
                        .present = true, .data_partno = fs->data_no, .hash_partno = fs->hash_no,
                        .data_attrs = fs->data_attrs,
                        .data_start = fs->data_start, .data_size = fs->data_size,
                        .hash_start = fs->hash_start, .hash_size = fs->hash_size,
                };
                (void) snprintf(l.slot[s].data_uuid, sizeof(l.slot[s].data_uuid), "%s", fs->data_uuid);
        }
        l.esp_present = f.esp;
        l.esp_partno = f.esp_no;
        l.esp_start = f.esp_start;
        l.esp_size = f.esp_size;
        (void) snprintf(l.esp_uuid, sizeof(l.esp_uuid), "%s", f.esp_uuid);
        *ret = l;
        return 0;
}
