/* SPDX-License-Identifier: MIT */
/* Fetching an OS image (oci.h) from an OCI image layout or a registry.
 *
 * Registries speak the OCI distribution API over HTTP(S), through libcurl.
 * Every blob goes through a sink while it arrives: its bytes are hashed
 * (SHA-256, mbedtls) and handed on, so a layer of any size streams straight
 * to its destination; nothing is whole in memory but manifests and the
 * config (at most OCI_MANIFEST_MAX and OCI_CONFIG_MAX).
 *
 * Time (--timeout, T seconds): abctl gives up when it has made no
 * progress for T seconds. Progress is a request that completed (a
 * manifest, the config, a whole blob, a token), or another MIN_RATE x T
 * bytes of a blob arriving that had not arrived before (a blob the
 * registry sends again from its start counts only past where the last
 * attempt got). That is, the deadline is the last progress + T, and it is
 * the bound of every single wait: the connection (CONNECTTIMEOUT), the
 * response headers and the body (an XFERINFOFUNCTION that aborts the
 * transfer at the deadline, however the bytes trickle), the backoff
 * between attempts. One attempt is given ATTEMPT_MIN_MS even when it
 * starts at the deadline, so abctl gives up at most about 2 s after it.
 * A transfer below MIN_RATE for min(T, 30 s) is cut (LOW_SPEED_*) and
 * retried: a trickle slower than that is no progress. A transfer that was
 * making progress and is cut resumes where it stopped (Range), however
 * long the install has been running.
 *
 * Failures are of two kinds. Transient ones (no connection, a stalled or
 * cut transfer, 429, 5xx) are retried with exponential backoff (0.5 s
 * doubling to 8 s, or the server's Retry-After) until the deadline; a blob
 * whose transfer was cut resumes where it stopped (Range), or starts over
 * when the registry will not resume. Permanent ones fail at once: 404, 403,
 * a 401 that offers no token or comes again with a token just issued, a
 * TLS certificate that does not verify, a digest or size that does not
 * match.
 *
 * Tokens (the distribution token authentication, docs/spec/auth/token.md):
 * a 401 with a Bearer challenge sends abctl to the challenge's realm for an
 * anonymous token of its service and scope; the answer's "token" (or
 * OAuth 2's "access_token") goes into the Authorization header of the
 * registry's requests, and is renewed when its "expires_in" (at least 60 s,
 * as the spec says) has run out or when the registry answers 401 again.
 * Nothing a server sends is copied into a request header unless it is
 * visible ASCII: a CR or LF there would start a header of its choosing.
 *
 * Credentials (a private registry) come from a containers auth file
 * (auth.h: --authfile, $REGISTRY_AUTH_FILE, /etc/abswitch/auth.json).
 * They are sent only where a server asked for them: to the registry after
 * a 401 with a Basic challenge (and then with its every request, as curl's
 * Basic auth, which libcurl drops on a redirect to another host), and to a
 * Bearer challenge's token realm (Basic, or an identitytoken as OAuth 2
 * refresh token in a POST). A 401 that answers credentials is final: a
 * wrong password fails at once, after one request that carried it, and
 * says which registry, which auth file and which of its keys. No secret
 * is ever logged: messages name the key of the auth file, not its values,
 * and libcurl's verbose mode is never turned on. */

#define _GNU_SOURCE 1  /* asprintf */
#include <curl/curl.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/hex.h"
#include "../common/io.h"
#include "../common/log.h"
#include "ocifetch.h"

#ifndef ABSWITCH_VERSION
#define ABSWITCH_VERSION "0"
#endif
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 8000
/* Sufficient progress: 16 KiB/s (128 kbit/s) averaged over --timeout. At
 * that rate a 1 GiB image takes 18 hours; a registry that trickles slower
 * is holding abctl, not serving it. */
#define MIN_RATE 16384u
#define STALL_MAX_S 30L
#define CONNECT_MAX_MS 10000u
#define ATTEMPT_MIN_MS 1000u
#define TOKEN_RESPONSE_MAX (64u * 1024)
#define TOKEN_MAX (16u * 1024)
#define TOKEN_LIFETIME_MIN_S 60   /* the spec's default and minimum for expires_in */
#define TOKEN_LIFETIME_MAX_S 86400
#define TOKEN_RENEW_EARLY_MS 5000u

/* ---- hashing sinks ---------------------------------------------------------- */

struct hashed {
        mbedtls_sha256_context sha;
        uint64_t pos, size;           /* bytes so far; the descriptor's size */
        uint64_t high;                /* the furthest pos any attempt reached (progress) */
        const struct oci_blob *blob;  /* digest "" for a document of unknown digest */
        oci_sink_fn sink;
        void *userdata;
        int error;                    /* the sink's, or -EFBIG */
        /* A Range request (oci_fetch_ranges): bytes [base, base + size) of
         * the blob, not hashed (the caller checks them), never the whole
         * blob instead. */
        bool range;
        uint64_t base;
};

static void hashed_start(struct hashed *h) {
        mbedtls_sha256_init(&h->sha);
        (void) mbedtls_sha256_starts_ret(&h->sha, 0);
        h->pos = 0;
}

static void hashed_restart(struct hashed *h) {
        mbedtls_sha256_free(&h->sha);
        hashed_start(h);
}

static int hashed_feed(struct hashed *h, const uint8_t *buf, size_t n) {
        if (n > h->size - h->pos) {
                if (h->blob->digest[0])
                        h->error = log_error_errno(-EFBIG, "Blob %.19s... is longer than the %llu bytes its descriptor says",
                                                   h->blob->digest, (unsigned long long) h->size);
                else
                        h->error = log_error_errno(-EFBIG, "The server's answer is longer than the %llu bytes abctl "
                                                   "accepts for it", (unsigned long long) h->size);
                return h->error;
        }
        if (!h->range)
                (void) mbedtls_sha256_update_ret(&h->sha, buf, n);
        int r = h->sink(h->userdata, h->pos, buf, n);
        if (r < 0) {
                h->error = r;
                return r;
        }
        h->pos += n;
        return 0;
}

static void digest_string(const uint8_t d[static 32], char ret[static OCI_DIGEST_MAX + 1]) {
        memcpy(ret, "sha256:", sizeof("sha256:"));
        hex_encode(d, 32, ret + sizeof("sha256:") - 1);
}

static int hashed_finish(struct hashed *h) {
        uint8_t d[32];
        char hex[OCI_DIGEST_MAX + 1];
        if (h->pos != h->size)
                return log_error_errno(-EBADMSG, "Blob %.19s... ended after %llu of its %llu bytes", h->blob->digest,
                                       (unsigned long long) h->pos, (unsigned long long) h->size);
        (void) mbedtls_sha256_finish_ret(&h->sha, d);
        digest_string(d, hex);
        if (strcmp(hex, h->blob->digest) != 0)
                return log_error_errno(-EBADMSG, "Blob %s does not match its digest: its bytes hash to %s. "
                                       "It was corrupted or tampered with in the registry or on the way",
                                       h->blob->digest, hex);
        return 0;
}

/* Memory sink for manifests and the config. */
struct membuf {
        char *data;
        size_t len, max;
};

static int mem_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct membuf *m = userdata;
        if (offset + n > m->max)
                return log_error_errno(-EFBIG, "A document of more than %zu bytes: refused", m->max);
        if (!m->data) {
                m->data = calloc(1, m->max + 1);
                if (!m->data)
                        return log_error_errno(-ENOMEM, "Out of memory");
        }
        memcpy(m->data + offset, buf, n);
        if (offset + n > m->len)
                m->len = (size_t) (offset + n);
        return 0;
}

/* ---- the layout --------------------------------------------------------------- */

static int layout_read(struct oci_source *s, const char *name, struct hashed *h) {
        char path[700];
        uint8_t buf[64 * 1024];
        (void) snprintf(path, sizeof(path), "%s/%s", s->ref.dir, name);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open %s: %m%s", path,
                                       errno == ENOENT ? " (is this an OCI image layout? make one with initramfs/mkoci)"
                                                       : "");
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return log_error_errno(-errno, "Reading %s failed: %m", path);
                if (n == 0)
                        return 0;
                int r = hashed_feed(h, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
}

/* ---- the registry ------------------------------------------------------------- */

/* The deadline moves when progress was made (see the top of this file). */
static void progress_mark(struct oci_source *s) {
        s->deadline = now_monotonic_ms() + s->timeout_ms;
        s->unmarked = 0;
}

static void progress_bytes(struct oci_source *s, uint64_t n) {
        s->unmarked += n;
        if (s->unmarked >= (uint64_t) MIN_RATE * s->timeout_ms / 1000)
                progress_mark(s);
}

/* One HTTP request's own state: every callback of that request gets this,
 * and nothing of another request's. */
struct xfer {
        struct oci_source *s;
        struct hashed *h;             /* the body goes here on 200/206 */
        long status;
        bool started, restarted;
        bool headers_done;            /* the blank line after the headers arrived */
        bool timed_out;               /* aborted at the deadline */
        uint64_t not_before;          /* the attempt's own minimum time (ATTEMPT_MIN_MS) */
        char content_type[128];
        char auth[1024];              /* WWW-Authenticate */
        char retry_after[32];
        char content_range[96];       /* after "bytes ": "FIRST-LAST/SIZE" */
        char errbody[512];            /* the start of an error response */
        size_t errlen;
};

static size_t header_cb(char *line, size_t size, size_t n, void *userdata) {
        struct xfer *x = userdata;
        size_t len = size * n;
        static const struct {
                const char *name;
                size_t off, size;
        } keep[] = {
                { "content-type:", offsetof(struct xfer, content_type), sizeof(((struct xfer *) 0)->content_type) },
                { "www-authenticate:", offsetof(struct xfer, auth), sizeof(((struct xfer *) 0)->auth) },
                { "retry-after:", offsetof(struct xfer, retry_after), sizeof(((struct xfer *) 0)->retry_after) },
                { "content-range: bytes ", offsetof(struct xfer, content_range),
                  sizeof(((struct xfer *) 0)->content_range) },
        };
        if (len > 7 && strncmp(line, "HTTP/", 5) == 0) {
                /* a new response (after a redirect): forget the last one's headers */
                x->content_type[0] = x->auth[0] = x->retry_after[0] = x->content_range[0] = 0;
                x->headers_done = false;
                return len;
        }
        if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
                x->headers_done = true;
                return len;
        }
        for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
                size_t kl = strlen(keep[i].name);
                if (len <= kl || strncasecmp(line, keep[i].name, kl) != 0)
                        continue;
                const char *v = line + kl;
                size_t vl = len - kl;
                while (vl && (*v == ' ' || *v == '\t'))
                        v++, vl--;
                while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
                        vl--;
                if (vl >= keep[i].size)
                        vl = keep[i].size - 1;
                memcpy((char *) x + keep[i].off, v, vl);
                ((char *) x + keep[i].off)[vl] = 0;
        }
        return len;
}

/* A 206's Content-Range ("FIRST-LAST/SIZE" or "FIRST-LAST/UNKNOWN" with a star) is exactly
 * first-last. */
static bool content_range_is(const char *v, uint64_t first, uint64_t last) {
        char *e;
        errno = 0;
        unsigned long long a = strtoull(v, &e, 10);
        if (errno || e == v || *e != '-' || a != first)
                return false;
        const char *p = e + 1;
        unsigned long long b = strtoull(p, &e, 10);
        return !errno && e != p && *e == '/' && b == last;
}

static size_t write_cb(char *buf, size_t size, size_t n, void *userdata) {
        struct xfer *x = userdata;
        size_t len = size * n;
        if (!x->started) {
                x->started = true;
                (void) curl_easy_getinfo(x->s->curl, CURLINFO_RESPONSE_CODE, &x->status);
                if (x->h->range && (x->status == 200 || x->status == 206)) {
                        uint64_t first = x->h->base + x->h->pos, last = x->h->base + x->h->size - 1;
                        if (x->status == 200 || !content_range_is(x->content_range, first, last)) {
                                /* Not an error of the registry's: it does not do
                                 * ranges. The caller falls back and says why. */
                                if (x->status == 200)
                                        (void) snprintf(x->s->range_error, sizeof(x->s->range_error),
                                                        "it answered a Range request with the whole blob (HTTP 200)");
                                else
                                        (void) snprintf(x->s->range_error, sizeof(x->s->range_error),
                                                        "it answered bytes %llu-%llu with Content-Range \"%.40s\"",
                                                        (unsigned long long) first, (unsigned long long) last,
                                                        x->content_range);
                                x->h->error = -EOPNOTSUPP;
                                return 0;
                        }
                } else if (x->status == 200 && x->h->pos > 0) {
                        /* The registry sends the whole blob again: start over. */
                        hashed_restart(x->h);
                        x->restarted = true;
                } else if (x->status == 206 && strtoull(x->content_range, NULL, 10) != x->h->pos) {
                        x->h->error = log_error_errno(-EPROTO, "The registry resumed at byte %.40s, not at %llu",
                                                      x->content_range, (unsigned long long) x->h->pos);
                        return 0;
                }
        }
        if (x->status != 200 && x->status != 206) {
                size_t k = MIN(len, sizeof(x->errbody) - 1 - x->errlen);
                memcpy(x->errbody + x->errlen, buf, k);
                x->errlen += k;
                x->errbody[x->errlen] = 0;
                x->errbody[strcspn(x->errbody, "\r\n")] = 0;
                return len;
        }
        if (x->h->range && len > x->h->size - x->h->pos) {
                /* More than the range asked: it does not do ranges right
                 * either (the caller falls back and says why). */
                (void) snprintf(x->s->range_error, sizeof(x->s->range_error),
                                "it answered bytes %llu-%llu with more than the %llu bytes asked",
                                (unsigned long long) x->h->base, (unsigned long long) (x->h->base + x->h->size - 1),
                                (unsigned long long) x->h->size);
                x->h->error = -EOPNOTSUPP;
                return 0;
        }
        if (hashed_feed(x->h, (const uint8_t *) buf, len) < 0)
                return 0;
        if (x->h->pos > x->h->high) {
                progress_bytes(x->s, x->h->pos - x->h->high);
                x->h->high = x->h->pos;
        }
        return len;
}

/* Called by libcurl while it connects and transfers, at least about once
 * a second even when nothing arrives: the deadline bounds every phase,
 * however slowly a server drips headers or body. */
static int xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        struct xfer *x = userdata;
        if (now_monotonic_ms() < MAX(x->s->deadline, x->not_before))
                return 0;
        x->timed_out = true;
        return 1;  /* CURLE_ABORTED_BY_CALLBACK */
}

/* One GET on the source's handle. Every per-request option is set here,
 * the callbacks' data included, so that no request runs with another's. */
static CURLcode xfer_perform(struct oci_source *s, const char *url, struct curl_slist *hdrs, struct xfer *x) {
        uint64_t t = now_monotonic_ms(), left = s->deadline > t ? s->deadline - t : 0;
        CURL *c = s->curl;

        x->not_before = t + ATTEMPT_MIN_MS;
        s->curl_error[0] = 0;
        (void) curl_easy_setopt(c, CURLOPT_URL, url);
        (void) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        (void) curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
        (void) curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
        (void) curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
        (void) curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
        (void) curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        (void) curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
        (void) curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        (void) curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long) MIN(MAX(left, ATTEMPT_MIN_MS), CONNECT_MAX_MS));
        CURLcode cc = curl_easy_perform(c);
        if (!x->started)
                (void) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
        return cc;
}

/* What went wrong with a request, in a line. */
static void xfer_error(const struct oci_source *s, const struct xfer *x, CURLcode cc, char *ret, size_t size) {
        if (cc == CURLE_OK)
                (void) snprintf(ret, size, "HTTP %ld%s%.200s", x->status, x->errlen ? ": " : "", x->errbody);
        else if (x->timed_out && !x->headers_done)
                (void) snprintf(ret, size, "no complete response by the deadline");
        else if (x->timed_out)
                (void) snprintf(ret, size, "the body arrived at under %u KiB/s", MIN_RATE / 1024);
        else
                (void) snprintf(ret, size, "%s", s->curl_error[0] ? s->curl_error : curl_easy_strerror(cc));
        ret[strcspn(ret, "\r\n")] = 0;
}

static bool transient_curl(CURLcode cc) {
        switch (cc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_ABORTED_BY_CALLBACK:  /* the deadline: the caller gives up */
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return true;
        default:
                return false;
        }
}

static bool transient(CURLcode cc, long status) {
        return cc == CURLE_OK ? status == 408 || status == 429 || status >= 500 : transient_curl(cc);
}

static bool tls_unverified(CURLcode cc) {
        return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE;
}

/* Bearer realm="https://auth/token",service="reg",scope="repository:x:pull" */
static void auth_param(const char *hdr, const char *key, char *ret, size_t size) {
        ret[0] = 0;
        size_t kl = strlen(key);
        for (const char *p = hdr; (p = strstr(p, key)); p += kl) {
                if ((p != hdr && p[-1] != ' ' && p[-1] != ',') || strncmp(p + kl, "=\"", 2) != 0)
                        continue;
                const char *v = p + kl + 2, *e = strchr(v, '"');
                if (e && (size_t) (e - v) < size) {
                        memcpy(ret, v, (size_t) (e - v));
                        ret[e - v] = 0;
                }
                return;
        }
}

/* A value from a server that goes into a request line or header must be
 * visible ASCII (RFC 6750's token68 is a subset): a CR or LF would end the
 * line and start a header of the server's choosing. The offset of the
 * first other byte, or -1; what it is in words. */
static ssize_t header_value_bad(const char *v, size_t n, const char **ret_what) {
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char) v[i];
                if (ch > 0x20 && ch < 0x7f)
                        continue;
                *ret_what = ch == '\r' ? "a carriage return (CR)"
                            : ch == '\n' ? "a line feed (LF)"
                            : ch == ' '  ? "a space"
                            : ch >= 0x80 ? "a byte that is not ASCII"
                                         : "a control character";
                return (ssize_t) i;
        }
        return -1;
}

/* The token of a token service's answer (JSON): "token", or OAuth 2's
 * "access_token"; its lifetime in seconds ("expires_in", 60 when absent
 * or shorter, as the spec says). why says what is wrong. */
static int token_parse(const char *json, char **ret, size_t *ret_len, long long *ret_lifetime, char *why,
                       size_t whysize) {
        json_object *o = json_tokener_parse(json), *t = NULL, *e = NULL;
        int r = -EBADMSG;

        /* Both may be there (the spec): "token" first, when it is a token. */
        if (o && (!json_object_object_get_ex(o, "token", &t) || !json_object_is_type(t, json_type_string) ||
                  json_object_get_string_len(t) == 0))
                (void) json_object_object_get_ex(o, "access_token", &t);
        if (!o || !json_object_is_type(o, json_type_object))
                (void) snprintf(why, whysize, "its answer is not a JSON object");
        else if (!t)
                (void) snprintf(why, whysize, "its answer has neither \"token\" nor \"access_token\"");
        else if (!json_object_is_type(t, json_type_string) || json_object_get_string_len(t) == 0)
                (void) snprintf(why, whysize, "its token is not a non-empty string");
        else if ((size_t) json_object_get_string_len(t) > TOKEN_MAX)
                (void) snprintf(why, whysize, "its token is %d bytes; abctl accepts at most %u",
                                json_object_get_string_len(t), TOKEN_MAX);
        else {
                long long lifetime = TOKEN_LIFETIME_MIN_S;
                if (json_object_object_get_ex(o, "expires_in", &e) && json_object_is_type(e, json_type_int))
                        lifetime = MIN(MAX(json_object_get_int64(e), (int64_t) TOKEN_LIFETIME_MIN_S),
                                       (int64_t) TOKEN_LIFETIME_MAX_S);
                /* All of it, a NUL inside too: the caller checks every byte. */
                size_t n = (size_t) json_object_get_string_len(t);
                *ret = malloc(n + 1);
                if (*ret) {
                        memcpy(*ret, json_object_get_string(t), n);
                        (*ret)[n] = 0;
                }
                *ret_len = n;
                *ret_lifetime = lifetime;
                r = *ret ? 0 : -ENOMEM;
                if (r < 0)
                        (void) snprintf(why, whysize, "out of memory");
        }
        json_object_put(o);
        return r;
}

/* Where the credentials came from, for messages: "the credentials of
 * \"KEY\" in FILE". Never a secret. */
static const char *cred_name(const struct oci_source *s, char *buf, size_t size) {
        (void) snprintf(buf, size, "the credentials of \"%s\" in %s", s->auth.key, s->authfile);
        return buf;
}

static bool have_password(const struct oci_source *s) {
        return s->auth.username && s->auth.password;
}

/* Basic credentials on the next request (libcurl encodes them), or none. */
static void curl_credentials(struct oci_source *s, bool on) {
        (void) curl_easy_setopt(s->curl, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
        (void) curl_easy_setopt(s->curl, CURLOPT_USERNAME, on ? s->auth.username : NULL);
        (void) curl_easy_setopt(s->curl, CURLOPT_PASSWORD, on ? s->auth.password : NULL);
}

/* A token for a Bearer challenge (what registries behind token
 * authentication ask even for pulls), kept in s->token: anonymous, or for
 * the auth file's credentials (Basic to the realm; an identitytoken as an
 * OAuth 2 refresh token, POSTed). 0; or -EAGAIN with err saying why, for a
 * failure worth retrying like the registry's own; or another negative
 * errno, logged. */
static int fetch_token(struct oci_source *s, const char *challenge, char *err, size_t errsize) {
        char realm[512], service[256], scope[512], url[1600], why[200], cn[900];
        struct membuf m = { .max = TOKEN_RESPONSE_MAX };
        struct oci_blob doc = { .size = TOKEN_RESPONSE_MAX };
        struct hashed h = { .size = TOKEN_RESPONSE_MAX, .blob = &doc, .sink = mem_sink, .userdata = &m };
        struct xfer x = { .s = s, .h = &h };
        _cleanup_free_ char *tok = NULL;
        const char *bad;
        long long lifetime;
        size_t toklen;
        ssize_t at;
        int r;

        auth_param(challenge, "realm", realm, sizeof(realm));
        auth_param(challenge, "service", service, sizeof(service));
        auth_param(challenge, "scope", scope, sizeof(scope));
        if (!realm[0])
                return log_error_errno(-EACCES, "%s asks for a token but names no realm to get one from "
                                       "(WWW-Authenticate: %.300s)", s->ref.registry, challenge);
        if ((at = header_value_bad(realm, strlen(realm), &bad)) >= 0)
                return log_error_errno(-EACCES, "%s names a token realm with %s at byte %zd: refused",
                                       s->ref.registry, bad, at);
        if (!startswith(realm, "https://") && !(s->plain_http && startswith(realm, "http://")))
                return log_error_errno(-EACCES, "%s sends abctl for a token to %s, which is not HTTPS: refused "
                                       "(a plain-HTTP realm only with --plain-http)", s->ref.registry, realm);
        if (!scope[0])
                (void) snprintf(scope, sizeof(scope), "repository:%s:pull", s->ref.repository);
        char *es = curl_easy_escape(s->curl, service, 0), *esc = curl_easy_escape(s->curl, scope, 0);
        int n = snprintf(url, sizeof(url), "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?",
                         es ? es : "", esc ? esc : "");
        curl_free(es);
        curl_free(esc);
        if (n < 0 || (size_t) n >= sizeof(url))
                return log_error_errno(-EACCES, "%s asks for a token with a realm, service and scope too long "
                                       "for abctl (%d bytes)", s->ref.registry, n);

        /* OAuth 2 (docs/spec/auth/oauth.md): the refresh token in a form POST. */
        _cleanup_free_ char *form = NULL;
        bool with_creds = s->auth.identity_token || have_password(s);
        if (s->auth.identity_token) {
                char *e1 = curl_easy_escape(s->curl, service, 0), *e2 = curl_easy_escape(s->curl, scope, 0),
                     *e3 = curl_easy_escape(s->curl, s->auth.identity_token, 0);
                if (asprintf(&form, "grant_type=refresh_token&client_id=abctl&service=%s&scope=%s&refresh_token=%s",
                             e1 ? e1 : "", e2 ? e2 : "", e3 ? e3 : "") < 0)
                        form = NULL;
                if (e3)
                        auth_wipe(e3, strlen(e3));
                curl_free(e1);
                curl_free(e2);
                curl_free(e3);
                if (!form)
                        return log_error_errno(-ENOMEM, "Out of memory");
                (void) snprintf(url, sizeof(url), "%s", realm);
                (void) curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, form);
                (void) curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE, (long) strlen(form));
        } else if (have_password(s))
                curl_credentials(s, true);
        if (with_creds && startswith(realm, "http://"))
                log_warning("The token service %s is plain HTTP (--plain-http): the credentials cross the network "
                            "unencrypted", realm);

        hashed_start(&h);
        CURLcode cc = xfer_perform(s, url, NULL, &x);
        mbedtls_sha256_free(&h.sha);
        if (form) {
                (void) curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);  /* the POST ends here */
                auth_wipe(form, strlen(form));
        }
        curl_credentials(s, false);
        if (h.error < 0) {
                free(m.data);
                return h.error;  /* too long: said */
        }
        if (cc != CURLE_OK || x.status != 200) {
                free(m.data);
                xfer_error(s, &x, cc, why, sizeof(why));
                if (transient(cc, x.status)) {
                        (void) snprintf(err, errsize, "the token service %s: %s", realm, why);
                        return -EAGAIN;
                }
                if (tls_unverified(cc))
                        return log_error_errno(-EPERM, "The TLS certificate of the token service %s does not verify "
                                               "(%s): trust its CA with --ca FILE", realm, why);
                if (with_creds)
                        return log_error_errno(-EACCES, "The token service %s of %s refuses %s for %s (%s): the "
                                               "user name, password or identity token is wrong, or grants no pull "
                                               "access; fix that entry (podman login --authfile %s %s)", realm,
                                               s->ref.registry, cred_name(s, cn, sizeof(cn)), scope, why,
                                               s->authfile, s->ref.registry);
                return log_error_errno(-EACCES, "The token service %s gives no anonymous token for %s (%s) and %s "
                                       "holds no credentials for %s: add them (podman login --authfile FILE %s, "
                                       "then abctl --authfile FILE), or make the repository public",
                                       realm, scope, why, s->authfile[0] ? s->authfile : "no auth file",
                                       s->ref.registry, s->ref.registry);
        }
        r = token_parse(m.data ? m.data : "", &tok, &toklen, &lifetime, why, sizeof(why));
        free(m.data);
        if (r < 0)
                return log_error_errno(-EACCES, "The token service %s answered without a usable token: %s", realm, why);
        if ((at = header_value_bad(tok, toklen, &bad)) >= 0)
                return log_error_errno(-EACCES, "The token from %s contains %s at byte %zd: refusing to copy it into a "
                                       "request header, where it could add headers of the server's choosing", realm,
                                       bad, at);

        size_t hl = strlen("Authorization: Bearer ") + strlen(tok) + 1;
        char *hdr = malloc(hl);
        if (!hdr)
                return log_error_errno(-ENOMEM, "Out of memory");
        (void) snprintf(hdr, hl, "Authorization: Bearer %s", tok);
        auth_wipe(tok, toklen);
        if (s->token)
                auth_wipe(s->token, strlen(s->token));
        free(s->token);
        s->token = hdr;
        s->token_renew = now_monotonic_ms() + (uint64_t) lifetime * 1000 - TOKEN_RENEW_EARLY_MS;
        (void) snprintf(s->challenge, sizeof(s->challenge), "%s", challenge);
        progress_mark(s);
        log_info("Got a token for %s from %s (valid %lld s)%s%s", scope, realm, lifetime,
                 with_creds ? " with " : "", with_creds ? cred_name(s, cn, sizeof(cn)) : "");
        return 0;
}

typedef enum Attempt {
        ATTEMPT_DONE,
        ATTEMPT_AGAIN,                /* a fresh token: try again at once */
        ATTEMPT_TRANSIENT,            /* err says why; back off and retry */
} Attempt;

/* One attempt of registry_get: an Attempt, or a negative errno, logged. */
static int registry_attempt(struct oci_source *s, const char *url, const char *what, const char *ref,
                            const char *accept, bool *fresh_token, struct xfer *x, char *err, size_t errsize) {
        struct curl_slist *hdrs = NULL;  /* it copies the strings */
        int r;

        /* The token's expires_in ran out: a new one before the registry refuses the old one. */
        if (s->token && !*fresh_token && now_monotonic_ms() >= s->token_renew) {
                r = fetch_token(s, s->challenge, err, errsize);
                if (r < 0)
                        return r == -EAGAIN ? ATTEMPT_TRANSIENT : r;
                *fresh_token = true;
        }
        if (accept) {
                char acc[600];
                (void) snprintf(acc, sizeof(acc), "Accept: %s", accept);
                hdrs = curl_slist_append(hdrs, acc);
        }
        if (s->token)
                hdrs = curl_slist_append(hdrs, s->token);
        if (x->h->range) {
                char range[80];
                uint64_t first = x->h->base + x->h->pos, last = x->h->base + x->h->size - 1;
                (void) snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long) first,
                                (unsigned long long) last);
                hdrs = curl_slist_append(hdrs, range);
                s->range_requests++;
        } else if (x->h->pos > 0) {
                char range[64];
                (void) snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long) x->h->pos);
                hdrs = curl_slist_append(hdrs, range);
        }
        x->h->error = 0;
        curl_credentials(s, s->basic);
        CURLcode cc = xfer_perform(s, url, hdrs, x);
        curl_credentials(s, false);
        curl_slist_free_all(hdrs);
        if (x->restarted)
                log_info("The registry did not resume %s; downloading it again from the start", ref);
        if (x->h->error < 0)
                return x->h->error;  /* the sink's own error: disk, size; said already */
        if (cc == CURLE_OK && (x->status == 200 || x->status == 206))
                return ATTEMPT_DONE;
        if (cc == CURLE_OK && x->status == 416 && x->h->range) {
                /* Bytes that are in the blob are not "unsatisfiable": it
                 * does not do ranges right. */
                (void) snprintf(s->range_error, sizeof(s->range_error),
                                "it answered a Range request within the blob with HTTP 416");
                return -EOPNOTSUPP;
        }

        if (cc == CURLE_OK && x->status == 401) {
                char cn[900];
                bool basic = strncasecmp(x->auth, "Basic", 5) == 0 && (x->auth[5] == 0 || x->auth[5] == ' ');
                if (basic && s->basic)
                        /* The credentials were sent: a second try would send the same. */
                        return log_error_errno(-EACCES, "%s refuses %s for %s (HTTP 401): the user name or password "
                                               "is wrong; fix that entry (podman login --authfile %s %s)",
                                               s->ref.registry, cred_name(s, cn, sizeof(cn)), s->ref.repository,
                                               s->authfile, s->ref.registry);
                if (basic && !have_password(s) && !s->authfile[0])
                        return log_error_errno(-EACCES, "%s wants a user name and password for %s (HTTP 401, Basic) "
                                               "and there is no auth file (--authfile, $REGISTRY_AUTH_FILE or "
                                               AUTH_FILE_DEFAULT "): make one (podman login --authfile FILE %s)",
                                               s->ref.registry, s->ref.repository, s->ref.registry);
                if (basic && !have_password(s))
                        return log_error_errno(-EACCES, "%s wants a user name and password for %s (HTTP 401, Basic) "
                                               "and %s holds none for it%s: add them (podman login --authfile %s %s)",
                                               s->ref.registry, s->ref.repository, s->authfile,
                                               s->auth.identity_token ? " (an identitytoken is for token services only)"
                                                                      : "", s->authfile, s->ref.registry);
                if (basic) {
                        s->basic = true;
                        log_info("%s wants a password: sending %s", s->ref.registry, cred_name(s, cn, sizeof(cn)));
                        if (s->plain_http)
                                log_warning("%s is plain HTTP (--plain-http): the password crosses the network "
                                            "unencrypted", s->ref.registry);
                        return ATTEMPT_AGAIN;
                }
                if (strncasecmp(x->auth, "Bearer ", 7) != 0)
                        return log_error_errno(-EACCES, "%s refuses access to %s (HTTP 401) and offers neither a "
                                               "token nor Basic authentication (WWW-Authenticate: %.100s)",
                                               s->ref.registry, s->ref.repository, x->auth[0] ? x->auth : "none");
                if (*fresh_token) {
                        char realm[512];
                        auth_param(s->challenge, "realm", realm, sizeof(realm));
                        if (s->auth.identity_token || have_password(s))
                                return log_error_errno(-EACCES, "%s refuses access to %s (HTTP 401) even with a token "
                                                       "just issued by %s for %s: they grant no pull access to it",
                                                       s->ref.registry, s->ref.repository, realm,
                                                       cred_name(s, cn, sizeof(cn)));
                        return log_error_errno(-EACCES, "%s refuses access to %s (HTTP 401) even with a token just "
                                               "issued by %s: that service gives no anonymous pull access to it; "
                                               "give abctl credentials (--authfile) or make the repository public",
                                               s->ref.registry, s->ref.repository, realm);
                }
                r = fetch_token(s, x->auth, err, errsize);
                if (r < 0)
                        return r == -EAGAIN ? ATTEMPT_TRANSIENT : r;
                *fresh_token = true;
                return ATTEMPT_AGAIN;
        }
        *fresh_token = false;
        if (cc == CURLE_OK && x->status == 403) {
                if (s->basic || (s->token && (s->auth.identity_token || have_password(s)))) {
                        char cn[900];
                        return log_error_errno(-EACCES, "%s refuses access to %s (HTTP 403%s%.200s) with %s: they "
                                               "grant no pull access to it", s->ref.registry, s->ref.repository,
                                               x->errlen ? ": " : "", x->errbody, cred_name(s, cn, sizeof(cn)));
                }
                return log_error_errno(-EACCES, "%s refuses access to %s (HTTP 403%s%.200s): abctl pulled anonymously; "
                                       "give it credentials (--authfile) or make the repository public",
                                       s->ref.registry, s->ref.repository, x->errlen ? ": " : "", x->errbody);
        }
        if (cc == CURLE_OK && x->status == 404)
                return log_error_errno(-ENOENT, "%s/%s has no %s %s (HTTP 404%s%.200s)", s->ref.registry,
                                       s->ref.repository, streq(what, "manifests") ? "image" : "blob", ref,
                                       x->errlen ? ": " : "", x->errbody);
        if (tls_unverified(cc))
                return log_error_errno(-EPERM, "The TLS certificate of %s does not verify (%s): trust its CA "
                                       "with --ca FILE, or use --plain-http for a plain-HTTP registry",
                                       s->ref.registry, s->curl_error[0] ? s->curl_error : curl_easy_strerror(cc));
        xfer_error(s, x, cc, err, errsize);
        if (!transient(cc, x->status))
                return log_error_errno(-EIO, "Fetching %s from %s failed: %s", ref, s->ref.registry, err);
        return ATTEMPT_TRANSIENT;
}

/* GET /v2/<repo>/<what>/<ref> into h, retrying transient failures until
 * the deadline. content_type (may be NULL) gets the response's. */
static int registry_get(struct oci_source *s, const char *what, const char *ref, const char *accept, struct hashed *h,
                        char *content_type, size_t ctsize) {
        char url[1200], err[300];
        unsigned attempt = 0;
        uint64_t backoff = BACKOFF_FIRST_MS;
        bool fresh_token = false;     /* the token was fetched for this attempt */

        (void) snprintf(url, sizeof(url), "%s://%s/v2/%s/%s/%s", s->plain_http ? "http" : "https", s->ref.registry,
                        s->ref.repository, what, ref);
        /* The request before this one completed, or this is the first. */
        progress_mark(s);
        for (;;) {
                struct xfer x = { .s = s, .h = h };
                attempt++;
                int r = registry_attempt(s, url, what, ref, accept, &fresh_token, &x, err, sizeof(err));
                if (r < 0)
                        return r;
                if (r == ATTEMPT_DONE) {
                        if (content_type)
                                (void) snprintf(content_type, ctsize, "%s", x.content_type);
                        progress_mark(s);
                        return 0;
                }
                if (r == ATTEMPT_AGAIN)
                        continue;

                uint64_t wait = backoff, t = now_monotonic_ms();
                if (t >= s->deadline)
                        return log_error_errno(-ETIMEDOUT, "Giving up on %s after %u attempts in %llu s: no progress "
                                               "for %llu s (--timeout), the last attempt: %s. Check that the "
                                               "registry is reachable, or raise --timeout", s->ref.registry, attempt,
                                               (unsigned long long) (t - s->started) / 1000,
                                               (unsigned long long) s->timeout_ms / 1000, err);
                unsigned long ra = x.retry_after[0] ? strtoul(x.retry_after, NULL, 10) : 0;
                if (ra > 0 && ra < 3600)
                        wait = ra * 1000;
                /* The last attempt comes at the deadline. */
                wait = MIN(wait, s->deadline - t);
                log_warning("%s: %s; retrying in %.1f s%s", s->ref.registry, err, (double) wait / 1000,
                            h->pos ? " (resuming)" : "");
                (void) usleep((useconds_t) wait * 1000);
                backoff = MIN(backoff * 2, BACKOFF_MAX_MS);
                s->retries++;
        }
}

/* ---- the source ----------------------------------------------------------------- */

/* This registry's credentials from the auth file (auth.h) into s->auth.
 * A missing default file means none; a missing file that was named
 * (--authfile, $REGISTRY_AUTH_FILE) is an error. The file's bytes are
 * wiped once parsed. */
static int auth_load(struct oci_source *s, const char *option) {
        AuthFileSource src;
        const char *path = auth_file_pick(option, getenv("REGISTRY_AUTH_FILE"), &src);
        const char *from = auth_file_source_to_string(src);
        char why[300];
        struct stat st;
        int r;

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT && src == AUTH_FILE_FALLBACK)
                return 0;
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open the auth file %s (%s): %m", path, from);
        if (fstat(fd, &st) < 0)
                return log_error_errno(-errno, "Cannot stat the auth file %s (%s): %m", path, from);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(-EINVAL, "The auth file %s (%s) is not a regular file", path, from);
        if ((uint64_t) st.st_size > AUTH_FILE_MAX)
                return log_error_errno(-EFBIG, "The auth file %s (%s) is %llu bytes, more than the %u abctl reads",
                                       path, from, (unsigned long long) st.st_size, AUTH_FILE_MAX);
        size_t n = (size_t) st.st_size;
        char *buf = calloc(1, n + 1);
        if (!buf)
                return log_error_errno(-ENOMEM, "Out of memory");
        r = pread_full(fd, buf, n, 0);
        if (r < 0) {
                free(buf);
                return log_error_errno(r, "Cannot read the auth file %s (%s): %s", path, from,
                                       r == -EIO ? "it shrank while abctl read it" : strerror(-r));
        }
        r = registry_auth_lookup(buf, n, s->ref.registry, s->ref.repository, &s->auth, why, sizeof(why));
        auth_wipe(buf, n);
        free(buf);
        if (r < 0)
                return log_error_errno(r, "The auth file %s (%s) is not a containers auth file: %s", path, from, why);
        (void) snprintf(s->authfile, sizeof(s->authfile), "%s", path);
        if (r > 0)
                log_info("Credentials for %s: \"%s\" in %s", s->ref.registry, s->auth.key, path);
        return 0;
}

int oci_source_open(struct oci_source *s, const struct oci_ref *ref, const struct oci_options *o) {
        *s = (struct oci_source) { .ref = *ref, .plain_http = o->plain_http,
                                   .timeout_ms = (uint64_t) o->timeout_sec * 1000 };
        s->started = now_monotonic_ms();
        s->deadline = s->started + s->timeout_ms;
        if (ref->kind == OCI_REF_LAYOUT) {
                char p[700];
                (void) snprintf(p, sizeof(p), "%s/oci-layout", ref->dir);
                if (access(p, R_OK) < 0)
                        return log_error_errno(-ENOENT, "%s is not an OCI image layout (no oci-layout file); "
                                               "make one with initramfs/mkoci (make oci-image)", ref->dir);
                return 0;
        }
        int r = auth_load(s, o->authfile);
        if (r < 0)
                return r;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return log_error_errno(-EIO, "libcurl cannot start");
        s->curl = curl_easy_init();
        if (!s->curl)
                return log_error_errno(-ENOMEM, "Out of memory");
        (void) curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "abctl/" ABSWITCH_VERSION);
        (void) curl_easy_setopt(s->curl, CURLOPT_FOLLOWLOCATION, 1L);  /* blobs redirect to storage */
        (void) curl_easy_setopt(s->curl, CURLOPT_MAXREDIRS, 5L);
        (void) curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, s->plain_http ? "http,https" : "https");
        (void) curl_easy_setopt(s->curl, CURLOPT_REDIR_PROTOCOLS_STR, s->plain_http ? "http,https" : "https");
        /* A transfer slower than MIN_RATE for min(--timeout, 30 s) is
         * stalled: cut and retried (resuming). The connection and the
         * deadline are set for each request (xfer_perform). */
        (void) curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_LIMIT, (long) MIN_RATE);
        (void) curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_TIME, MIN((long) o->timeout_sec, STALL_MAX_S));
        (void) curl_easy_setopt(s->curl, CURLOPT_BUFFERSIZE, 256L * 1024);
        (void) curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->curl_error);
        if (o->ca) {
                if (access(o->ca, R_OK) < 0)
                        return log_error_errno(-errno, "Cannot read the CA file %s given with --ca: %m", o->ca);
                (void) curl_easy_setopt(s->curl, CURLOPT_CAINFO, o->ca);
        } else {
                /* libcurl's default is Debian's bundle; other distributions keep it elsewhere. */
                static const char *const bundles[] = { "/etc/ssl/certs/ca-certificates.crt",
                                                       "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem" };
                for (size_t i = 0; i < ELEMENTSOF(bundles); i++)
                        if (access(bundles[i], R_OK) == 0) {
                                (void) curl_easy_setopt(s->curl, CURLOPT_CAINFO, bundles[i]);
                                break;
                        }
        }
        return 0;
}

void oci_source_close(struct oci_source *s) {
        if (s->curl)
                curl_easy_cleanup(s->curl);
        s->curl = NULL;
        if (s->token)
                auth_wipe(s->token, strlen(s->token));
        free(s->token);
        s->token = NULL;
        registry_auth_done(&s->auth);
}

int oci_fetch_blob(struct oci_source *s, const struct oci_blob *b, oci_sink_fn sink, void *userdata) {
        struct hashed h = { .size = b->size, .blob = b, .sink = sink, .userdata = userdata };
        int r;

        hashed_start(&h);
        if (s->ref.kind == OCI_REF_LAYOUT) {
                char name[100];
                (void) snprintf(name, sizeof(name), "blobs/sha256/%s", b->digest + 7);
                r = layout_read(s, name, &h);
        } else
                r = registry_get(s, "blobs", b->digest, NULL, &h, NULL, 0);
        if (r >= 0)
                r = hashed_finish(&h);
        mbedtls_sha256_free(&h.sha);
        return r;
}

/* ---- ranges --------------------------------------------------------------------- */

/* One request's bytes (gap filler included) to the caller's sink: only
 * those of the ranges r[i..end), at their blob offsets. Bytes arrive in
 * order (a request that is cut resumes, it never starts over). */
struct range_dispatch {
        const struct oci_range *r;
        size_t i, end;
        uint64_t base;                /* the request's first byte in the blob */
        oci_sink_fn sink;
        void *userdata;
        uint64_t received;
};

static int range_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct range_dispatch *d = userdata;
        uint64_t at = d->base + offset;

        d->received += n;
        while (n > 0 && d->i < d->end) {
                const struct oci_range *q = &d->r[d->i];
                uint64_t qend = q->offset + q->length;
                if (at + n <= q->offset)
                        return 0;  /* filler only */
                if (at < q->offset) {
                        size_t skip = (size_t) (q->offset - at);
                        at += skip, buf += skip, n -= skip;
                }
                size_t k = (size_t) MIN((uint64_t) n, qend - at);
                int r = d->sink(d->userdata, at, buf, k);
                if (r < 0)
                        return r;
                at += k, buf += k, n -= k;
                if (at == qend)
                        d->i++;
        }
        return 0;
}

static int layout_ranges(struct oci_source *s, const struct oci_blob *b, const struct oci_range *r, size_t n,
                         oci_sink_fn sink, void *userdata, uint64_t *ret_bytes) {
        char path[700];
        struct stat st;
        uint64_t got = 0;

        (void) snprintf(path, sizeof(path), "%s/blobs/sha256/%s", s->ref.dir, b->digest + 7);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open %s: %m", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(-errno, "Cannot stat %s: %m", path);
        if ((uint64_t) st.st_size != b->size)
                return log_error_errno(-EBADMSG, "Blob %s has %llu bytes, its descriptor says %llu", path,
                                       (unsigned long long) st.st_size, (unsigned long long) b->size);
        _cleanup_free_ uint8_t *buf = malloc(1024 * 1024);
        if (!buf)
                return log_error_errno(-ENOMEM, "Out of memory");
        for (size_t i = 0; i < n; i++)
                for (uint64_t o = r[i].offset, end = r[i].offset + r[i].length; o < end;) {
                        size_t k = (size_t) MIN(end - o, (uint64_t) 1024 * 1024);
                        int e = pread_full(fd, buf, k, o);
                        if (e < 0)
                                return log_error_errno(e, "Reading %s failed: %s", path,
                                                       e == -EIO ? "it is shorter than it was" : strerror(-e));
                        e = sink(userdata, o, buf, k);
                        if (e < 0)
                                return e;
                        o += k, got += k;
                }
        *ret_bytes = got;
        return 0;
}

int oci_fetch_ranges(struct oci_source *s, const struct oci_blob *b, const struct oci_range *r, size_t n,
                     unsigned max_requests, oci_sink_fn sink, void *userdata, uint64_t *ret_bytes) {
        char why[200];
        size_t nreq;
        int e;

        e = ranges_check(r, n, b->size, why, sizeof(why));
        if (e < 0)
                return log_error_errno(e, "Bad ranges of blob %.19s...: %s", b->digest, why);
        s->range_error[0] = 0;
        if (n == 0) {
                *ret_bytes = 0;
                return 0;
        }
        if (s->ref.kind == OCI_REF_LAYOUT)
                return layout_ranges(s, b, r, n, sink, userdata, ret_bytes);

        _cleanup_free_ struct range_request *req = calloc(n, sizeof(*req));
        if (!req)
                return log_error_errno(-ENOMEM, "Out of memory");
        (void) ranges_coalesce(r, n, max_requests, req, &nreq);
        struct range_dispatch d = { .r = r, .sink = sink, .userdata = userdata };
        for (size_t k = 0; k < nreq; k++) {
                struct hashed h = { .size = req[k].length, .blob = b, .sink = range_sink, .userdata = &d,
                                    .range = true, .base = req[k].offset };
                d.i = req[k].first;
                d.end = req[k].first + req[k].count;
                d.base = req[k].offset;
                hashed_start(&h);
                e = registry_get(s, "blobs", b->digest, NULL, &h, NULL, 0);
                mbedtls_sha256_free(&h.sha);
                if (e >= 0 && h.pos != h.size) {
                        (void) snprintf(s->range_error, sizeof(s->range_error),
                                        "it answered bytes %llu-%llu with %llu bytes",
                                        (unsigned long long) req[k].offset,
                                        (unsigned long long) (req[k].offset + req[k].length - 1),
                                        (unsigned long long) h.pos);
                        e = -EOPNOTSUPP;
                }
                if (e < 0)
                        return e;
        }
        *ret_bytes = d.received;
        return 0;
}

int oci_fetch_small(struct oci_source *s, const struct oci_blob *b, size_t max, char **ret) {
        struct membuf m = { .max = max };
        *ret = NULL;
        if (b->size > max)
                return log_error_errno(-EFBIG, "%s is %llu bytes; more than the %zu abctl accepts", b->digest,
                                       (unsigned long long) b->size, max);
        int r = oci_fetch_blob(s, b, mem_sink, &m);
        if (r < 0) {
                free(m.data);
                return r;
        }
        if (!m.data)
                m.data = calloc(1, 1);
        *ret = m.data;
        return m.data ? 0 : log_error_errno(-ENOMEM, "Out of memory");
}

/* A manifest by tag or digest: its bytes, its media type, its digest
 * (which must be the one asked for, when a digest was). */
static int fetch_manifest_doc(struct oci_source *s, const char *ref, struct membuf *m, char *ct, size_t ctsize,
                              char digest[static OCI_DIGEST_MAX + 1]) {
        struct oci_blob any = { .size = OCI_MANIFEST_MAX };
        struct hashed h = { .size = OCI_MANIFEST_MAX, .blob = &any, .sink = mem_sink, .userdata = m };
        uint8_t d[32];
        int r;

        m->max = OCI_MANIFEST_MAX;
        hashed_start(&h);
        r = registry_get(s, "manifests", ref,
                         OCI_MT_MANIFEST ", " OCI_MT_INDEX ", " OCI_MT_DOCKER_MANIFEST ", " OCI_MT_DOCKER_LIST, &h, ct,
                         ctsize);
        (void) mbedtls_sha256_finish_ret(&h.sha, d);
        mbedtls_sha256_free(&h.sha);
        if (r < 0)
                return r;
        digest_string(d, digest);
        if (oci_digest_valid(ref) && !streq(digest, ref))
                return log_error_errno(-EBADMSG, "The registry answered %s with a manifest whose digest is %s", ref,
                                       digest);
        return 0;
}

int oci_resolve(struct oci_source *s, struct oci_manifest *ret, char ret_digest[static OCI_DIGEST_MAX + 1]) {
        const char *arch = oci_native_architecture();
        char why[300], ct[128] = "";
        struct membuf m = {};
        struct oci_blob pick;
        int r;

        if (s->ref.kind == OCI_REF_LAYOUT) {
                /* index.json is not content-addressed: read it as it is. */
                struct oci_blob idx = { .size = OCI_MANIFEST_MAX };
                char *json = NULL;
                char p[700];
                struct stat st;
                (void) snprintf(p, sizeof(p), "%s/index.json", s->ref.dir);
                if (stat(p, &st) < 0)
                        return log_error_errno(-errno, "Cannot read %s: %m", p);
                if ((uint64_t) st.st_size > OCI_MANIFEST_MAX)
                        return log_error_errno(-EFBIG, "%s is larger than %u bytes", p, OCI_MANIFEST_MAX);
                struct membuf im = { .max = OCI_MANIFEST_MAX };
                struct hashed h = { .size = (uint64_t) st.st_size, .blob = &idx, .sink = mem_sink, .userdata = &im };
                hashed_start(&h);
                r = layout_read(s, "index.json", &h);
                mbedtls_sha256_free(&h.sha);
                json = im.data;
                if (r >= 0 && oci_index_pick(json ? json : "", im.len, s->ref.tag, s->ref.digest, arch, &pick, why,
                                             sizeof(why)) < 0)
                        r = log_error_errno(-ENOENT, "%s: %s", s->ref.dir, why);
                free(json);
                if (r < 0)
                        return r;
        } else {
                r = fetch_manifest_doc(s, s->ref.digest[0] ? s->ref.digest : s->ref.tag, &m, ct, sizeof(ct), ret_digest);
                if (r < 0)
                        goto out;
                OciDocKind k = oci_doc_kind(ct, m.data ? m.data : "", m.len);
                if (k == OCI_DOC_MANIFEST) {
                        r = oci_manifest_parse(m.data, m.len, ret, why, sizeof(why));
                        if (r < 0)
                                r = log_error_errno(r, "%s/%s: %s", s->ref.registry, s->ref.repository, why);
                        goto out;
                }
                if (k != OCI_DOC_INDEX) {
                        r = log_error_errno(-EMEDIUMTYPE, "%s/%s answered with '%s', neither a manifest nor an index",
                                            s->ref.registry, s->ref.repository, ct);
                        goto out;
                }
                r = oci_index_pick(m.data, m.len, NULL, NULL, arch, &pick, why, sizeof(why));
                if (r < 0) {
                        r = log_error_errno(r, "%s/%s: %s", s->ref.registry, s->ref.repository, why);
                        goto out;
                }
                free(m.data);
                m = (struct membuf) {};
        }

        /* The manifest itself, by digest: content-addressed both ways. */
        if (s->ref.kind == OCI_REF_LAYOUT) {
                char *json;
                r = oci_fetch_small(s, &pick, OCI_MANIFEST_MAX, &json);
                if (r < 0)
                        return r;
                m = (struct membuf) { .data = json, .len = (size_t) pick.size };
        } else {
                char d[OCI_DIGEST_MAX + 1];
                r = fetch_manifest_doc(s, pick.digest, &m, ct, sizeof(ct), d);
                if (r < 0)
                        goto out;
        }
        memcpy(ret_digest, pick.digest, OCI_DIGEST_MAX + 1);
        r = oci_manifest_parse(m.data ? m.data : "", m.len, ret, why, sizeof(why));
        if (r < 0)
                r = log_error_errno(r, "Manifest %s: %s", pick.digest, why);
out:
        free(m.data);
        return r;
}

/* The bytes of the manifest with digest (its annotations are the update
 * agent's, update.c: a rollout's start and duration), checked against
 * the digest; free() *ret. */
int oci_fetch_manifest(struct oci_source *s, const char *digest, char **ret, size_t *ret_len) {
        struct membuf m = {};
        char ct[128], d[OCI_DIGEST_MAX + 1];
        int r;

        if (!oci_digest_valid(digest))
                return -EINVAL;
        if (s->ref.kind == OCI_REF_LAYOUT) {
                struct oci_blob b = { .size = 0 };
                struct stat st;
                char p[700];
                (void) snprintf(p, sizeof(p), "%s/blobs/sha256/%s", s->ref.dir, digest + 7);
                if (stat(p, &st) < 0)
                        return log_error_errno(-errno, "Cannot read %s: %m", p);
                memcpy(b.digest, digest, OCI_DIGEST_MAX + 1);
                b.size = (uint64_t) st.st_size;
                r = oci_fetch_small(s, &b, OCI_MANIFEST_MAX, ret);
                if (r >= 0)
                        *ret_len = (size_t) b.size;
                return r;
        }
        r = fetch_manifest_doc(s, digest, &m, ct, sizeof(ct), d);
        if (r < 0) {
                free(m.data);
                return r;
        }
        *ret = m.data ? m.data : strdup("");
        *ret_len = m.len;
        return *ret ? 0 : -ENOMEM;
}
