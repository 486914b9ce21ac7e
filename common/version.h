/* SPDX-License-Identifier: MIT */
#pragma once

/* Image versions (os-release IMAGE_VERSION=, VERSION_ID=, an OCI config's
 * "version"): which of two is newer. Pure, no I/O. */

/* Compares two version strings as systemd's strverscmp_improved() does
 * (src/fundamental/string-util-fundamental.c; the UAPI group's version
 * format specification), so that abctl orders images the way
 * systemd-sysupdate and systemd-boot order them:
 *
 *  - a version is a row of segments, each a run of digits (compared as
 *    numbers of any length, leading zeros ignored) or of ASCII letters
 *    (compared as bytes; a longer run that starts the same is newer); a
 *    numeric segment is newer than an alphabetic one;
 *  - a segment may be prefixed with '~' (a pre-release: older than
 *    anything else at that point, even the end of the string), '-' (the
 *    release after the version), '^' (a patched release) or '.' (a point
 *    release); at one point, '~' < the end < '-' < '^' < '.' < no prefix;
 *  - any other byte separates segments and is otherwise ignored ("123_a"
 *    is "123a").
 *
 * So 122.1 < 123~rc1-1 < 123 < 123-a < 123-1 < 123^post1 < 123.1-1 <
 * 123a-1 < 124-1, and 1.9 < 1.10. NULL counts as "". Returns -1 when a is
 * older than b, 0 when they are the same version, 1 when a is newer. */
int version_compare(const char *a, const char *b);
