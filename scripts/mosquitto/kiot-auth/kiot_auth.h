/* kiot-auth: a Mosquitto 2.0 plugin that asks the device registry who may connect (see README.md). */
#ifndef KIOT_AUTH_H
#define KIOT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

enum { KIOT_PUBLISH = 1, KIOT_SUBSCRIBE = 2 };
enum { KIOT_NO_MATCH = -1, KIOT_DENY = 0, KIOT_ALLOW = 1 };

/* One rule of an EMQX (>= 5.8) HTTP authn answer's `acl` array: docs.emqx.com, "Access Control List". */
struct kiot_rule {
	bool allow;
	int actions;       /* KIOT_PUBLISH | KIOT_SUBSCRIBE */
	bool exact;        /* topic given as "eq <filter>": the filter itself, not what it matches */
	int qos_mask;      /* bit n: QoS n; 0 when the rule names no qos (every QoS) */
	int retain;        /* -1: any; 0: only non-retained publishes; 1: any (EMQX: true allows retain) */
	char *topic;
};

struct kiot_acl {
	size_t count;
	struct kiot_rule *rules;
};

/* acl.c */
int kiot_acl_parse(const cJSON *array, struct kiot_acl *out);
void kiot_acl_free(struct kiot_acl *acl);
int kiot_acl_decide(const struct kiot_acl *acl, int action, const char *topic, uint8_t qos, bool retain);
bool kiot_filter_covers(const char *rule, const char *topic);

/* http.c */
struct kiot_http;
struct kiot_http *kiot_http_new(const char *base_url, const char *api_key, long timeout_ms);
void kiot_http_free(struct kiot_http *http);
cJSON *kiot_http_post(struct kiot_http *http, const char *path, cJSON *body);

#endif
