/* SPDX-License-Identifier: MIT */
/* GPT partition entry attributes: read both copies, validate, write one copy
 * at a time. See slots.h for why by hand. */

#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <zlib.h>

#include "../common/io.h"
#include "../common/macro.h"
#include "../common/unaligned.h"
#include "slots.h"

#define GPT_SIGNATURE "EFI PART"
#define GPT_REVISION 0x00010000u
#define GPT_HEADER_MIN 92u
#define GPT_ENTRY_MIN 128u
#define GPT_ENTRIES_MAX 4096u
#define GPT_ARRAY_MAX (1024u * 1024u)
#define ENTRY_ATTR_OFFSET 48

struct gpt_copy {
        bool valid;
        uint64_t lba;
        uint8_t *hdr;        /* one sector */
        uint8_t *array;      /* entries * entry_size */
        uint64_t my_lba, alt_lba, array_lba;
        uint32_t entries, entry_size, header_size;
        char why[GPT_REASON_MAX];   /* why it is not valid */
};

static void copy_free(struct gpt_copy *c) {
        free(c->hdr);
        free(c->array);
        *c = (struct gpt_copy) {};
}

static int disk_geometry(int fd, unsigned *ret_sector, uint64_t *ret_sectors) {
        struct stat st;
        uint64_t bytes;
        int ss = 512;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKSSZGET, &ss) < 0 || ioctl(fd, BLKGETSIZE64, &bytes) < 0)
                        return -errno;
        } else if (S_ISREG(st.st_mode))
                bytes = (uint64_t) st.st_size;
        else
                return -ENOTBLK;
        if (ss < 512 || ss > 4096 || bytes / (unsigned) ss < 68)
                return -EINVAL;
        *ret_sector = (unsigned) ss;
        *ret_sectors = bytes / (unsigned) ss;
        return 0;
}

/* Why a copy was refused, for the log: libblkid and cgptlib keep a reason
 * for every refusal, so "INVALID" never stands alone. */
#define REJECT(c, ...)                                                          \
        ({                                                                      \
                (void) snprintf((c)->why, sizeof((c)->why), __VA_ARGS__);       \
                0;                                                              \
        })

/* Reads and validates the header at lba and its entry array, as libblkid
 * does (UEFI 2.10 section 5.3.2): on refusal c->valid stays false and
 * c->why says which check failed. < 0 only when out of memory. */
static int copy_read(int fd, unsigned ss, uint64_t sectors, uint64_t lba, struct gpt_copy *c) {
        int r;

        *c = (struct gpt_copy) { .lba = lba };
        if (ss < 512)
                return -EINVAL; /* disk_geometry() never returns less */
        c->hdr = malloc(ss);
        if (!c->hdr)
                return -ENOMEM;
        if (lba == 0 || lba >= sectors)
                return REJECT(c, "LBA %llu is not on the disk (%llu sectors)", (unsigned long long) lba,
                              (unsigned long long) sectors);
        r = pread_full(fd, c->hdr, ss, lba * ss);
        if (r < 0)
                return REJECT(c, "the header at LBA %llu cannot be read: %s", (unsigned long long) lba, strerror(-r));

        uint8_t *h = c->hdr;
        if (memcmp(h, GPT_SIGNATURE, 8) != 0)
                return REJECT(c, "no GPT signature \"EFI PART\" at LBA %llu", (unsigned long long) lba);
        if (le32(h + 8) != GPT_REVISION)
                return REJECT(c, "header revision 0x%08x, not 1.0 (0x%08x)", le32(h + 8), GPT_REVISION);
        c->header_size = le32(h + 12);
        if (c->header_size < GPT_HEADER_MIN || c->header_size > ss)
                return REJECT(c, "header size %u is outside %u-%u bytes", c->header_size, GPT_HEADER_MIN, ss);
        uint32_t crc = le32(h + 16);
        put32(h + 16, 0);
        uint32_t calc = (uint32_t) crc32(0, h, c->header_size);
        put32(h + 16, crc);
        if (crc != calc)
                return REJECT(c, "header CRC32 0x%08x does not match its contents (0x%08x)", crc, calc);

        c->my_lba = le64(h + 24);
        c->alt_lba = le64(h + 32);
        uint64_t first = le64(h + 40), last = le64(h + 48);
        c->array_lba = le64(h + 72);
        c->entries = le32(h + 80);
        c->entry_size = le32(h + 84);
        if (c->my_lba != lba)
                return REJECT(c, "MyLBA %llu is not where the header is (LBA %llu)", (unsigned long long) c->my_lba,
                              (unsigned long long) lba);
        if (first > last)
                return REJECT(c, "first usable LBA %llu is after the last usable LBA %llu",
                              (unsigned long long) first, (unsigned long long) last);
        if (last >= sectors)
                return REJECT(c, "last usable LBA %llu is past the end of the disk (%llu sectors)",
                              (unsigned long long) last, (unsigned long long) sectors);
        if (c->alt_lba >= sectors)
                return REJECT(c, "AlternateLBA %llu is past the end of the disk (%llu sectors)",
                              (unsigned long long) c->alt_lba, (unsigned long long) sectors);
        if (c->entry_size < GPT_ENTRY_MIN || c->entry_size % 8 != 0)
                return REJECT(c, "entry size %u is not a multiple of 8 of at least %u bytes", c->entry_size,
                              GPT_ENTRY_MIN);
        if (c->entries == 0 || c->entries > GPT_ENTRIES_MAX || (uint64_t) c->entries * c->entry_size > GPT_ARRAY_MAX)
                return REJECT(c, "%u entries of %u bytes: not 1-%u entries within %u bytes", c->entries,
                              c->entry_size, GPT_ENTRIES_MAX, GPT_ARRAY_MAX);
        size_t asize = (size_t) c->entries * c->entry_size;
        uint64_t asectors = (asize + ss - 1) / ss;
        if (c->array_lba < 2 || c->array_lba + asectors > sectors)
                return REJECT(c, "entry array at LBA %llu (%llu sectors) is not on the disk",
                              (unsigned long long) c->array_lba, (unsigned long long) asectors);
        /* Each copy keeps to its own side of the usable area: the primary
         * header and array before it, the backup array and header after it,
         * and the primary must leave room after it for the backup it names.
         * A CRC-valid header that points elsewhere would have a repair write
         * a copy into a partition (found by tests/fuzz/fuzz-gpt.c). */
        if (lba == 1) {
                if (c->array_lba + asectors > first)
                        return REJECT(c, "entry array (LBA %llu-%llu) reaches into the usable area (from LBA %llu)",
                                      (unsigned long long) c->array_lba,
                                      (unsigned long long) (c->array_lba + asectors - 1), (unsigned long long) first);
                if (c->alt_lba <= last + asectors)
                        return REJECT(c, "AlternateLBA %llu leaves no room for the backup entry array after the "
                                      "usable area (which ends at LBA %llu)", (unsigned long long) c->alt_lba,
                                      (unsigned long long) last);
        } else {
                if (c->array_lba <= last || c->array_lba + asectors > lba)
                        return REJECT(c, "entry array (LBA %llu-%llu) is not between the usable area (ending at "
                                      "LBA %llu) and its header", (unsigned long long) c->array_lba,
                                      (unsigned long long) (c->array_lba + asectors - 1), (unsigned long long) last);
                if (c->alt_lba >= first)
                        return REJECT(c, "AlternateLBA %llu is not before the usable area (from LBA %llu)",
                                      (unsigned long long) c->alt_lba, (unsigned long long) first);
        }

        c->array = malloc(asize);
        if (!c->array)
                return -ENOMEM;
        r = pread_full(fd, c->array, asize, c->array_lba * ss);
        if (r < 0)
                return REJECT(c, "the entry array at LBA %llu cannot be read: %s", (unsigned long long) c->array_lba,
                              strerror(-r));
        crc = le32(h + 88);
        calc = (uint32_t) crc32(0, c->array, (uInt) asize);
        if (crc != calc)
                return REJECT(c, "entry array CRC32 0x%08x does not match the entries (0x%08x)", crc, calc);
        c->valid = true;
        return 0;
}

static int read_both(int fd, struct gpt_copy *p, struct gpt_copy *b, struct gpt_status *st) {
        uint64_t sectors = 0;
        int r;

        *st = (struct gpt_status) {};
        r = disk_geometry(fd, &st->sector_size, &sectors);
        if (r < 0)
                return r;
        r = copy_read(fd, st->sector_size, sectors, 1, p);
        if (r < 0)
                return r;
        /* The backup is where the primary says, or at the last sector. */
        r = copy_read(fd, st->sector_size, sectors, p->valid ? p->alt_lba : sectors - 1, b);
        if (r < 0)
                return r;
        if (!b->valid && p->valid && p->alt_lba != sectors - 1) {
                char where[GPT_REASON_MAX];
                (void) snprintf(where, sizeof(where), "%s", b->why);
                copy_free(b);
                r = copy_read(fd, st->sector_size, sectors, sectors - 1, b);
                if (r < 0)
                        return r;
                if (!b->valid) {
                        char last[GPT_REASON_MAX];
                        (void) snprintf(last, sizeof(last), "%s", b->why);
                        (void) snprintf(b->why, sizeof(b->why), "where the primary points: %.100s; at the last LBA: %.100s",
                                        where, last);
                }
        }
        st->primary_valid = p->valid;
        st->backup_valid = b->valid;
        if (!p->valid)
                (void) snprintf(st->primary_reason, sizeof(st->primary_reason), "%s", p->why);
        if (!b->valid)
                (void) snprintf(st->backup_reason, sizeof(st->backup_reason), "%s", b->why);
        if (!p->valid && !b->valid)
                return -EBADMSG;
        const struct gpt_copy *v = p->valid ? p : b;
        st->entries = v->entries;
        st->copies_differ = p->valid && b->valid &&
                            (p->entries != b->entries || p->entry_size != b->entry_size ||
                             memcmp(p->array, b->array, (size_t) p->entries * p->entry_size) != 0);
        return 0;
}

static bool entry_used(const uint8_t *e) {
        static const uint8_t zero[16];
        return memcmp(e, zero, 16) != 0;
}

int gpt_get_attrs(int fd, const unsigned *partnos, uint64_t *ret_attrs, size_t n, struct gpt_status *ret_status) {
        struct gpt_copy p = {}, b = {};
        struct gpt_status st;
        int r = read_both(fd, &p, &b, &st);
        if (r >= 0) {
                const struct gpt_copy *v = p.valid ? &p : &b;
                for (size_t i = 0; i < n && r >= 0; i++) {
                        if (partnos[i] == 0 || partnos[i] > v->entries) {
                                r = -ENOENT;
                                break;
                        }
                        const uint8_t *e = v->array + (size_t) (partnos[i] - 1) * v->entry_size;
                        if (!entry_used(e))
                                r = -ENOENT;
                        else
                                ret_attrs[i] = le64(e + ENTRY_ATTR_OFFSET);
                }
        }
        if (ret_status)
                *ret_status = st;
        copy_free(&p);
        copy_free(&b);
        return r;
}

static ssize_t default_pwrite(int fd, const void *buf, size_t n, off_t off, void *u) {
        (void) u;
        return pwrite(fd, buf, n, off);
}
static int default_flush(int fd, void *u) {
        (void) u;
        return fdatasync(fd) < 0 ? -errno : 0;
}

static int write_all(const struct gpt_io *io, int fd, const void *buf, size_t n, off_t off, struct gpt_status *st) {
        const uint8_t *p = buf;
        while (n > 0) {
                ssize_t k = io->pwrite(fd, p, n, off, io->userdata);
                st->writes++;
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EIO;
                p += k, n -= (size_t) k, off += k;
        }
        return 0;
}

/* Writes copy c (its array, then its header with fresh CRCs), then flushes. */
static int copy_write(int fd, const struct gpt_io *io, unsigned ss, struct gpt_copy *c, struct gpt_status *st) {
        size_t asize = (size_t) c->entries * c->entry_size;
        int r;

        put32(c->hdr + 88, (uint32_t) crc32(0, c->array, (uInt) asize));
        put32(c->hdr + 16, 0);
        put32(c->hdr + 16, (uint32_t) crc32(0, c->hdr, c->header_size));

        r = write_all(io, fd, c->array, asize, (off_t) (c->array_lba * ss), st);
        if (r < 0)
                return r;
        r = write_all(io, fd, c->hdr, ss, (off_t) (c->lba * ss), st);
        if (r < 0)
                return r;
        st->flushes++;
        return io->flush(fd, io->userdata);
}

/* Rebuilds an invalid copy dst from the valid one: same array, header with
 * its own location. The backup array sits right before the backup header. */
static int copy_rebuild(const struct gpt_copy *src, struct gpt_copy *dst, unsigned ss, bool dst_is_backup) {
        size_t asize = (size_t) src->entries * src->entry_size;
        uint64_t asectors = (asize + ss - 1) / ss;

        free(dst->array);
        dst->array = malloc(asize);
        if (!dst->array)
                return -ENOMEM;
        memcpy(dst->array, src->array, asize);
        memcpy(dst->hdr, src->hdr, ss);
        dst->header_size = src->header_size;
        dst->entries = src->entries;
        dst->entry_size = src->entry_size;
        dst->lba = dst_is_backup ? src->alt_lba : 1;
        dst->my_lba = dst->lba;
        dst->alt_lba = dst_is_backup ? 1 : src->my_lba;
        dst->array_lba = dst_is_backup ? dst->lba - asectors : 2;
        put64(dst->hdr + 24, dst->my_lba);
        put64(dst->hdr + 32, dst->alt_lba);
        put64(dst->hdr + 72, dst->array_lba);
        dst->valid = true;
        return 0;
}

int gpt_set_attrs(int fd, const unsigned *partnos, const uint64_t *attrs, size_t n, const struct gpt_io *io_in,
                  struct gpt_status *ret_status) {
        struct gpt_copy p = {}, b = {};
        struct gpt_status st;
        struct gpt_io io = {
                .pwrite = io_in && io_in->pwrite ? io_in->pwrite : default_pwrite,
                .flush = io_in && io_in->flush ? io_in->flush : default_flush,
                .userdata = io_in ? io_in->userdata : NULL,
        };
        int r;

        r = read_both(fd, &p, &b, &st);
        if (r < 0)
                goto out;

        /* The valid copy is the truth; when both are valid the primary is
         * (it is written first, so it may be one step ahead). */
        bool p_was_valid = p.valid, b_was_valid = b.valid, differ = st.copies_differ;
        if (!p.valid)
                r = copy_rebuild(&b, &p, st.sector_size, false);
        else if (!b.valid || differ)
                r = copy_rebuild(&p, &b, st.sector_size, true);
        if (r < 0)
                goto out;

        bool changed = false;
        for (size_t i = 0; i < n; i++) {
                if (partnos[i] == 0 || partnos[i] > p.entries) {
                        r = -ENOENT;
                        goto out;
                }
                uint8_t *e = p.array + (size_t) (partnos[i] - 1) * p.entry_size;
                if (!entry_used(e)) {
                        r = -ENOENT;
                        goto out;
                }
                if (le64(e + ENTRY_ATTR_OFFSET) != attrs[i]) {
                        put64(e + ENTRY_ATTR_OFFSET, attrs[i]);
                        put64(b.array + (size_t) (partnos[i] - 1) * b.entry_size + ENTRY_ATTR_OFFSET, attrs[i]);
                        changed = true;
                }
        }

        if (changed || !p_was_valid) {
                r = copy_write(fd, &io, st.sector_size, &p, &st);
                if (r < 0)
                        goto out;
        }
        if (changed || !b_was_valid || differ) {
                r = copy_write(fd, &io, st.sector_size, &b, &st);
                if (r < 0)
                        goto out;
        }
        r = changed ? 1 : 0;
out:
        if (ret_status)
                *ret_status = st;
        copy_free(&p);
        copy_free(&b);
        return r;
}

/* ---- partition geometry ---------------------------------------------------------- */

#define ENTRY_FIRST_OFFSET 32
#define ENTRY_LAST_OFFSET  40
#define ENTRY_NAME_OFFSET  56
#define ENTRY_NAME_CHARS   36

void gpt_table_done(struct gpt_table *t) {
        free(t->parts);
        *t = (struct gpt_table) {};
}

int gpt_read_table(int fd, struct gpt_table *ret, struct gpt_status *ret_status) {
        struct gpt_copy p = {}, b = {};
        struct gpt_status st;
        struct gpt_table t = {};
        int r;

        r = read_both(fd, &p, &b, &st);
        if (r < 0)
                goto out;
        const struct gpt_copy *v = p.valid ? &p : &b;
        r = disk_geometry(fd, &t.sector_size, &t.sectors);
        if (r < 0)
                goto out;
        t.first_usable = le64(v->hdr + 40);
        t.last_usable = le64(v->hdr + 48);
        t.parts = calloc(v->entries, sizeof(*t.parts));
        if (!t.parts) {
                r = -ENOMEM;
                goto out;
        }
        for (uint32_t i = 0; i < v->entries; i++) {
                const uint8_t *e = v->array + (size_t) i * v->entry_size;
                if (!entry_used(e))
                        continue;
                struct gpt_partition *g = &t.parts[t.n_parts++];
                g->partno = i + 1;
                g->first = le64(e + ENTRY_FIRST_OFFSET);
                g->last = le64(e + ENTRY_LAST_OFFSET);
                /* The name is UTF-16LE; the labels we look for are ASCII. */
                size_t k = 0;
                for (size_t j = 0; j < ENTRY_NAME_CHARS; j++) {
                        uint16_t ch = (uint16_t) (e[ENTRY_NAME_OFFSET + 2 * j] | (e[ENTRY_NAME_OFFSET + 2 * j + 1] << 8));
                        if (ch == 0)
                                break;
                        g->name[k++] = ch >= 0x20 && ch < 0x7f ? (char) ch : '?';
                }
                g->name[k] = 0;
        }
        *ret = t;
        t = (struct gpt_table) {};
        r = 0;
out:
        if (ret_status)
                *ret_status = st;
        gpt_table_done(&t);
        copy_free(&p);
        copy_free(&b);
        return r;
}

static const struct gpt_partition *table_find(const struct gpt_table *t, unsigned partno) {
        for (size_t i = 0; i < t->n_parts; i++)
                if (t->parts[i].partno == partno)
                        return &t->parts[i];
        return NULL;
}

static bool partno_in(unsigned partno, const unsigned *partnos, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (partnos[i] == partno)
                        return true;
        return false;
}

/* "partition 4 (system-b, LBA 6144-10239)" */
static void describe(const struct gpt_partition *g, char *buf, size_t size) {
        (void) snprintf(buf, size, "partition %u (%s, LBA %llu-%llu)", g->partno, g->name[0] ? g->name : "no name",
                        (unsigned long long) g->first, (unsigned long long) g->last);
}

int gpt_check_geometry(const struct gpt_table *t, const unsigned *partnos, size_t n, char *why, size_t why_size) {
        char a[96], b[96];

        for (size_t i = 0; i < n; i++) {
                const struct gpt_partition *g = table_find(t, partnos[i]);
                if (!g) {
                        (void) snprintf(why, why_size, "partition %u is not in the partition table", partnos[i]);
                        return -ENOENT;
                }
                describe(g, a, sizeof(a));
                /* GPT's ending LBA is inclusive: last < first is empty or
                 * negative, and last - first + 1 would wrap. */
                if (g->last < g->first) {
                        (void) snprintf(why, why_size, "%s ends before it starts: it is empty or negative", a);
                        return -EUCLEAN;
                }
                if (g->last >= t->sectors) {
                        (void) snprintf(why, why_size, "%s runs past the end of the disk (%llu sectors)", a,
                                        (unsigned long long) t->sectors);
                        return -EUCLEAN;
                }
                if (g->first < t->first_usable || g->last > t->last_usable) {
                        (void) snprintf(why, why_size, "%s lies outside the usable LBA %llu-%llu of the partition table",
                                        a, (unsigned long long) t->first_usable, (unsigned long long) t->last_usable);
                        return -EUCLEAN;
                }
        }
        /* Every partition we use against every other partition on the disk:
         * a data partition must never be written either. Pairs of two we use
         * are reported once, in table order. Another partition that is itself
         * empty or negative covers no sector. */
        for (size_t i = 0; i < t->n_parts; i++) {
                const struct gpt_partition *x = &t->parts[i];
                for (size_t j = i + 1; j < t->n_parts; j++) {
                        const struct gpt_partition *y = &t->parts[j];
                        if (!partno_in(x->partno, partnos, n) && !partno_in(y->partno, partnos, n))
                                continue;
                        if (x->last < x->first || y->last < y->first)
                                continue;
                        if (x->first <= y->last && y->first <= x->last) {
                                describe(x, a, sizeof(a));
                                describe(y, b, sizeof(b));
                                (void) snprintf(why, why_size, "%s overlaps %s", a, b);
                                return -EUCLEAN;
                        }
                }
        }
        return 0;
}
