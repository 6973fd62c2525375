/* kiot-auth: a Mosquitto 2.0 plugin that asks the device registry who may connect (see README.md). */
#ifndef KIOT_AUTH_H
#define KIOT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

struct mosquitto;

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

/*
 * A client the registry admitted, found by the broker's client pointer (what an ACL check names) and by client id.
 * Kept after its DISCONNECT: a persistent session stays in the broker under the same pointer, and Mosquitto checks
 * READ for it when it queues a message for it while it is offline (mosquitto src/subs.c subs__send), so the
 * device's rules must still answer then. An entry goes when a connection at the same address authenticates (the
 * old one was freed) or when the same client id is admitted again (a takeover or a return: the old context
 * is taken over or gone): at most one per device id.
 */
struct client {
	struct client *next;
	struct client *next_by_id;
	const struct mosquitto *mosq;
	char *id;
	char *username;
	bool superuser;
	bool revoked;
	struct kiot_acl acl;
	time_t confirmed; /* when the registry last said yes (monotonic seconds) */
};

/* clients.c */
struct client *kiot_client_find(const struct mosquitto *mosq);
void kiot_client_add(struct client *c);
void kiot_client_forget(const struct mosquitto *mosq);
void kiot_client_forget_id(const char *id);
void kiot_client_forget_all(void);

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
