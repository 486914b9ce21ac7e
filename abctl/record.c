/* SPDX-License-Identifier: MIT */
/* The init's boot record (/run/abswitch/boot.json) as abctl reads it: which
 * slot runs, on which disk, and how the init knew. json-c parses; this only
 * picks fields, each of which may be missing or of the wrong type. */

#include <stdio.h>

#include "abctl.h"

void abctl_record_from_json(json_object *o, struct abctl_record *ret) {
        json_object *v, *p;

        *ret = (struct abctl_record) { .slot = _SLOT_INVALID };
        if (json_object_object_get_ex(o, "slot", &v) && json_object_is_type(v, json_type_string))
                ret->slot = slot_from_string(json_object_get_string(v));
        if (json_object_object_get_ex(o, "partitions", &p) && json_object_object_get_ex(p, "disk", &v) &&
            json_object_is_type(v, json_type_string))
                (void) snprintf(ret->disk, sizeof(ret->disk), "%s", json_object_get_string(v));
        if (json_object_object_get_ex(o, "identity", &p) && json_object_object_get_ex(p, "source", &v) &&
            json_object_is_type(v, json_type_string))
                (void) snprintf(ret->source, sizeof(ret->source), "%s", json_object_get_string(v));
}
