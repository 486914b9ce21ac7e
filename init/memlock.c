/* SPDX-License-Identifier: MIT */
/* No page locking in the init (linked with -Wl,--wrap=mlock,--wrap=munlock).
 *
 * libcryptsetup mlock()s every buffer it allocates for key material
 * (crypt_safe_alloc), and munlock()s it again: for a verity activation
 * that is the root hash and the table, public values, half a dozen times.
 * Locking keeps pages out of swap, and an initramfs has no swap to keep
 * them out of; but each call splits and merges the init's mappings, kernel
 * code the boot runs nowhere else (about 300 translated blocks, 10 ms of an
 * emulated boot; bench/tbprof.py counts them). Refusing as a process over
 * RLIMIT_MEMLOCK would be refused is what libcryptsetup already expects
 * ("Ignore failure if it is over limit"): it marks the buffer unlocked and
 * still wipes it when freed. */
#include <errno.h>
#include <stddef.h>

int __wrap_mlock(const void *addr, size_t len);
int __wrap_munlock(const void *addr, size_t len);

int __wrap_mlock(const void *addr, size_t len) {
        (void) addr, (void) len;
        errno = EPERM;
        return -1;
}

int __wrap_munlock(const void *addr, size_t len) {
        (void) addr, (void) len;
        return 0;
}
