/* SPDX-License-Identifier: MIT */
#pragma once

/* Would the firmware start this UKI? abctl install asks before it writes
 * anything (signature.c: efi/'s pure Authenticode and db/dbx code, and
 * OpenSSL's libcrypto for PKCS#7 and X.509). */

#include <stddef.h>

/* With Secure Boot on in efivars (SecureBoot = 1, SetupMode not 1):
 * checks the Authenticode signature of the UKI uki/size (label names it)
 * against db and dbx as EDK2 does. Returns 0 when the firmware would start
 * it (one line says by which db rule) or when Secure Boot is off (one line
 * says the signature was not checked); -EKEYREJECTED when it would
 * refuse it, after saying why (the signer found, the db/dbx rule that
 * decided, what to do); another negative errno when db or dbx cannot be
 * read or parsed (said too: refused, as nothing could be checked). */
int abctl_check_uki_signature(const char *efivars, const char *label, const void *uki, size_t size);
