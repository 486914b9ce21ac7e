/* SPDX-License-Identifier: MIT */
/* Fetching an OS image (oci.h) from an OCI image layout or a registry.
 *
 * Registries speak the OCI distribution API over HTTP(S), through libcurl.
 * Every blob goes through a sink while it arrives: its bytes are hashed
 * (SHA-256, mbedtls) and handed on, so a layer of any size streams straight
 * to its destination; nothing is whole in memory but manifests and the
 * config (at most OCI_MANIFEST_MAX and OCI_CONFIG_MAX).
 *
 * Failures are of two kinds. Transient ones (no connection, a stalled or
 * cut transfer, 429, 5xx) are retried with exponential backoff (0.5 s
 * doubling to 8 s, or the server's Retry-After) until the deadline; a blob
 * whose transfer was cut resumes where it stopped (Range), or starts over
 * when the registry will not resume. Permanent ones fail at once: 404, 401
 * and 403 (after an anonymous token was tried, as public registries want),
 * a TLS certificate that does not verify, a digest or size that does not
 * match. */

#include <curl/curl.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "ocifetch.h"

#ifndef ABSWITCH_VERSION
#define ABSWITCH_VERSION "0"
#endif
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 8000

/* ---- hashing sinks ---------------------------------------------------------- */

struct hashed {
        mbedtls_sha256_context sha;
        uint64_t pos, size;           /* bytes so far; the descriptor's size */
        const struct oci_blob *blob;
        oci_sink_fn sink;
        void *userdata;
        int error;                    /* the sink's, or -EFBIG */
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
                h->error = log_error_errno(-EFBIG, "Blob %.19s... is longer than the %llu bytes its descriptor says",
                                           h->blob->digest, (unsigned long long) h->size);
                return h->error;
        }
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
        int n = snprintf(ret, OCI_DIGEST_MAX + 1, "sha256:");
        for (size_t i = 0; i < 32; i++)
                n += snprintf(ret + n, (size_t) (OCI_DIGEST_MAX + 1 - n), "%02x", d[i]);
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

struct xfer {
        struct oci_source *s;
        struct hashed *h;             /* the body goes here on 200/206 */
        long status;
        bool started, restarted;
        char content_type[128];
        char auth[1024];              /* WWW-Authenticate */
        char retry_after[32];
        char content_range_start[32];
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
                { "content-range: bytes ", offsetof(struct xfer, content_range_start),
                  sizeof(((struct xfer *) 0)->content_range_start) },
        };
        if (len > 7 && strncmp(line, "HTTP/", 5) == 0) {
                /* a new response (after a redirect): forget the last one's headers */
                x->content_type[0] = x->auth[0] = x->retry_after[0] = x->content_range_start[0] = 0;
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

static size_t write_cb(char *buf, size_t size, size_t n, void *userdata) {
        struct xfer *x = userdata;
        size_t len = size * n;
        if (!x->started) {
                x->started = true;
                (void) curl_easy_getinfo(x->s->curl, CURLINFO_RESPONSE_CODE, &x->status);
                if (x->status == 200 && x->h->pos > 0) {
                        /* The registry sends the whole blob again: start over. */
                        hashed_restart(x->h);
                        x->restarted = true;
                } else if (x->status == 206 && strtoull(x->content_range_start, NULL, 10) != x->h->pos) {
                        x->h->error = log_error_errno(-EPROTO, "The registry resumed at byte %s, not at %llu",
                                                      x->content_range_start, (unsigned long long) x->h->pos);
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
        return hashed_feed(x->h, (const uint8_t *) buf, len) < 0 ? 0 : len;
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

static size_t token_cb(char *buf, size_t size, size_t n, void *userdata) {
        return mem_sink(userdata, ((struct membuf *) userdata)->len, (const uint8_t *) buf, size * n) < 0 ? 0 : size * n;
}

/* Anonymous token for a Bearer challenge (what public registries ask even for pulls). */
static int fetch_token(struct oci_source *s, const char *challenge) {
        char realm[512], service[256], scope[512], url[1600];
        struct membuf m = { .max = 64 * 1024 };
        long status = 0;

        if (strncasecmp(challenge, "Bearer ", 7) != 0)
                return -EACCES;
        auth_param(challenge, "realm", realm, sizeof(realm));
        auth_param(challenge, "service", service, sizeof(service));
        auth_param(challenge, "scope", scope, sizeof(scope));
        if (!realm[0] || strncmp(realm, "https://", 8) != 0)
                return -EACCES;  /* never send anything to a plain-HTTP realm */
        if (!scope[0])
                (void) snprintf(scope, sizeof(scope), "repository:%s:pull", s->ref.repository);
        char *es = curl_easy_escape(s->curl, service, 0), *esc = curl_easy_escape(s->curl, scope, 0);
        (void) snprintf(url, sizeof(url), "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?",
                        es ? es : "", esc ? esc : "");
        curl_free(es);
        curl_free(esc);

        CURL *c = curl_easy_duphandle(s->curl);
        if (!c)
                return log_error_errno(-ENOMEM, "Out of memory");
        (void) curl_easy_setopt(c, CURLOPT_URL, url);
        (void) curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        (void) curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, NULL);
        (void) curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, token_cb);
        (void) curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
        CURLcode cc = curl_easy_perform(c);
        (void) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        int r = -EACCES;
        if (cc == CURLE_OK && status == 200 && m.data) {
                json_object *o = json_tokener_parse(m.data), *t;
                if (o && (json_object_object_get_ex(o, "token", &t) || json_object_object_get_ex(o, "access_token", &t)) &&
                    json_object_is_type(t, json_type_string) && json_object_get_string_len(t) < (int) sizeof(s->token) - 32) {
                        (void) snprintf(s->token, sizeof(s->token), "Authorization: Bearer %s", json_object_get_string(t));
                        r = 0;
                }
                json_object_put(o);
        }
        free(m.data);
        return r;
}

static bool transient_curl(CURLcode cc) {
        switch (cc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
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

/* GET /v2/<repo>/<what>/<ref> into h, retrying transient failures until
 * the deadline. content_type (may be NULL) gets the response's. */
static int registry_get(struct oci_source *s, const char *what, const char *ref, const char *accept, struct hashed *h,
                        char *content_type, size_t ctsize) {
        char url[1200], range[64], acc[600];
        unsigned attempt = 0;
        uint64_t backoff = BACKOFF_FIRST_MS;
        bool token_tried = false;

        (void) snprintf(url, sizeof(url), "%s://%s/v2/%s/%s/%s", s->plain_http ? "http" : "https", s->ref.registry,
                        s->ref.repository, what, ref);
        for (;;) {
                struct xfer x = { .s = s, .h = h };
                struct curl_slist *hdrs = NULL;
                attempt++;
                if (accept) {
                        (void) snprintf(acc, sizeof(acc), "Accept: %s", accept);
                        hdrs = curl_slist_append(hdrs, acc);
                }
                if (s->token[0])
                        hdrs = curl_slist_append(hdrs, s->token);
                if (h->pos > 0) {
                        (void) snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long) h->pos);
                        hdrs = curl_slist_append(hdrs, range);
                }
                h->error = 0;
                (void) curl_easy_setopt(s->curl, CURLOPT_URL, url);
                (void) curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hdrs);
                (void) curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, &x);
                (void) curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &x);
                CURLcode cc = curl_easy_perform(s->curl);
                curl_slist_free_all(hdrs);
                if (!x.started)
                        (void) curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &x.status);
                if (x.restarted)
                        log_info("The registry did not resume %s; downloading it again from the start", ref);

                char err[300];
                if (h->error < 0)
                        return h->error;  /* the sink's own error: disk, size; said already */
                if (cc == CURLE_OK && (x.status == 200 || x.status == 206)) {
                        if (content_type)
                                (void) snprintf(content_type, ctsize, "%s", x.content_type);
                        return 0;
                }
                if (cc == CURLE_OK && x.status == 401 && !token_tried && x.auth[0]) {
                        token_tried = true;
                        if (fetch_token(s, x.auth) >= 0)
                                continue;
                }
                if (cc == CURLE_OK && (x.status == 401 || x.status == 403))
                        return log_error_errno(-EACCES, "%s refuses access to %s (HTTP %ld): abctl pulls anonymously; "
                                               "make the repository public or mirror it", s->ref.registry,
                                               s->ref.repository, x.status);
                if (cc == CURLE_OK && x.status == 404)
                        return log_error_errno(-ENOENT, "%s/%s has no %s %s (HTTP 404%s%.200s)", s->ref.registry,
                                               s->ref.repository, streq(what, "manifests") ? "image" : "blob", ref,
                                               x.errlen ? ": " : "", x.errbody);
                if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
                        return log_error_errno(-EPERM, "The TLS certificate of %s does not verify (%s): trust its CA "
                                               "with --ca FILE, or use --plain-http for a plain-HTTP registry",
                                               s->ref.registry, s->curl_error[0] ? s->curl_error : curl_easy_strerror(cc));
                bool transient = cc == CURLE_OK ? x.status == 408 || x.status == 429 || x.status >= 500
                                                : transient_curl(cc);
                if (cc == CURLE_OK)
                        (void) snprintf(err, sizeof(err), "HTTP %ld%s%.200s", x.status, x.errlen ? ": " : "", x.errbody);
                else
                        (void) snprintf(err, sizeof(err), "%s", s->curl_error[0] ? s->curl_error : curl_easy_strerror(cc));
                err[strcspn(err, "\r\n")] = 0;
                if (!transient)
                        return log_error_errno(-EIO, "Fetching %s from %s failed: %s", ref, s->ref.registry, err);

                uint64_t wait = backoff, t = now_monotonic_ms();
                unsigned long ra = x.retry_after[0] ? strtoul(x.retry_after, NULL, 10) : 0;
                if (ra > 0 && ra < 3600)
                        wait = ra * 1000;
                /* The last attempt comes at the deadline. */
                if (t < s->deadline)
                        wait = MIN(wait, s->deadline - t);
                if (t >= s->deadline)
                        return log_error_errno(-ETIMEDOUT, "Giving up on %s after %u attempts in %llu s: %s. "
                                               "Check that the registry is reachable, or raise --timeout",
                                               s->ref.registry, attempt,
                                               (unsigned long long) (t - s->started) / 1000, err);
                log_warning("%s: %s; retrying in %.1f s%s", s->ref.registry, err, (double) wait / 1000,
                            h->pos ? " (resuming)" : "");
                (void) usleep((useconds_t) wait * 1000);
                backoff = MIN(backoff * 2, BACKOFF_MAX_MS);
                s->retries++;
        }
}

/* ---- the source ----------------------------------------------------------------- */

int oci_source_open(struct oci_source *s, const struct oci_ref *ref, const struct oci_options *o) {
        *s = (struct oci_source) { .ref = *ref, .plain_http = o->plain_http };
        s->started = now_monotonic_ms();
        s->deadline = s->started + (uint64_t) o->timeout_sec * 1000;
        if (ref->kind == OCI_REF_LAYOUT) {
                char p[700];
                (void) snprintf(p, sizeof(p), "%s/oci-layout", ref->dir);
                if (access(p, R_OK) < 0)
                        return log_error_errno(-ENOENT, "%s is not an OCI image layout (no oci-layout file); "
                                               "make one with initramfs/mkoci (make oci-image)", ref->dir);
                return 0;
        }
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
        (void) curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT, 10L);
        /* A transfer slower than 1 KiB/s for 30 s is stalled: cut and retried. */
        (void) curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        (void) curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_TIME, 30L);
        (void) curl_easy_setopt(s->curl, CURLOPT_BUFFERSIZE, 256L * 1024);
        (void) curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->curl_error);
        (void) curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, header_cb);
        (void) curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, write_cb);
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
