/*
 * kiot-auth: Mosquitto 2.0 plugin (API v5, mosquitto_plugin.h) that enforces per-device credentials by asking
 * kiot's device registry, with EMQX's HTTP authn/authz contract (docs.emqx.com "Use HTTP Service"):
 *   connect      POST <url>/broker/authn {clientid, username, password, with_acl: true}
 *                -> {result: allow|deny|ignore, is_superuser, acl: [EMQX rules]}
 *   ACL checks   answered from the client's `acl` in memory; no network per publish. Once `ttl` seconds have
 *                passed since the registry last confirmed a client, the next check it would allow asks
 *                POST <url>/broker/authz {clientid, username, topic, action}; a refusal there means the device
 *                lost its access (disabled, deleted), so the check is denied and the client disconnected.
 * `ignore` (not a device: the bridge, the fleet claim account) and anything the rules do not cover go on to the
 * next plugin in the chain (dynamic security holds those accounts), as EMQX passes them to the next authorizer.
 * Options (plugin_opt_<name>): url, api_key_file (holds a key with scope broker:auth), ttl (s, default 30),
 * timeout_ms (default 3000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "kiot_auth.h"

#define RETRY_SECONDS 5

static mosquitto_plugin_id_t *plugin_id;
static struct kiot_http *http;
static long ttl_seconds = 30;
/* Client ids to disconnect at the next tick: kicking inside the ACL check of that very client would free the
 * connection under the broker's feet. */
static char **kicks;
static size_t kick_count, kick_capacity;

static time_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void queue_kick(const char *id)
{
	if(kick_count == kick_capacity){
		size_t capacity = kick_capacity ? kick_capacity * 2 : 16;
		char **grown = realloc(kicks, capacity * sizeof(char *));
		if(grown == NULL) return;
		kicks = grown;
		kick_capacity = capacity;
	}
	char *copy = strdup(id);
	if(copy) kicks[kick_count++] = copy;
}

static const char *result_of(const cJSON *answer)
{
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(answer, "result");
	return cJSON_IsString(result) ? result->valuestring : "";
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)userdata;
	struct mosquitto_evt_basic_auth *ed = event_data;
	kiot_client_forget(ed->client); /* whatever an earlier connection at this address left */
	const char *id = mosquitto_client_id(ed->client);
	if(ed->username == NULL || ed->username[0] == '\0' || id == NULL) return MOSQ_ERR_PLUGIN_DEFER;

	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "clientid", id);
	cJSON_AddStringToObject(body, "username", ed->username);
	cJSON_AddStringToObject(body, "password", ed->password ? ed->password : "");
	cJSON_AddTrueToObject(body, "with_acl");
	cJSON *answer = kiot_http_post(http, "/broker/authn", body);
	cJSON_Delete(body);
	/* Registry unreachable: no answer of ours; the rest of the chain decides (for a device: refused). */
	if(answer == NULL) return MOSQ_ERR_PLUGIN_DEFER;

	int rc = MOSQ_ERR_PLUGIN_DEFER;
	const char *result = result_of(answer);
	if(!strcmp(result, "deny")){
		rc = MOSQ_ERR_AUTH;
	}else if(!strcmp(result, "allow")){
		struct client *c = calloc(1, sizeof(*c));
		if(c == NULL){
			rc = MOSQ_ERR_NOMEM;
		}else if(kiot_acl_parse(cJSON_GetObjectItemCaseSensitive(answer, "acl"), &c->acl) != 0){
			mosquitto_log_printf(MOSQ_LOG_WARNING, "kiot-auth: refusing %s: its acl is not understood", id);
			free(c);
			rc = MOSQ_ERR_AUTH;
		}else if((c->id = strdup(id)) == NULL || (c->username = strdup(ed->username)) == NULL){
			kiot_acl_free(&c->acl);
			free(c->id);
			free(c);
			rc = MOSQ_ERR_NOMEM;
		}else{
			kiot_client_forget_id(id);
			c->mosq = ed->client;
			c->superuser = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "is_superuser"));
			c->confirmed = now_s();
			kiot_client_add(c);
			rc = MOSQ_ERR_SUCCESS;
		}
	}
	cJSON_Delete(answer);
	return rc;
}

/* Asks the registry whether the client still has this access: 1 yes, 0 no, -1 no answer. */
static int still_allowed(const struct client *c, const char *topic, int action)
{
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "clientid", c->id);
	cJSON_AddStringToObject(body, "username", c->username);
	cJSON_AddStringToObject(body, "topic", topic);
	cJSON_AddStringToObject(body, "action", action == KIOT_PUBLISH ? "publish" : "subscribe");
	cJSON *answer = kiot_http_post(http, "/broker/authz", body);
	cJSON_Delete(body);
	if(answer == NULL) return -1;
	int allowed = !strcmp(result_of(answer), "allow");
	cJSON_Delete(answer);
	return allowed;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)userdata;
	struct mosquitto_evt_acl_check *ed = event_data;
	struct client *c = kiot_client_find(ed->client);
	if(c == NULL) return MOSQ_ERR_PLUGIN_DEFER;
	if(c->revoked) return MOSQ_ERR_ACL_DENIED;
	if(c->superuser || ed->access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
	/* Mosquitto checks READ for every message it delivers: a client receives what it may subscribe to. */
	int action = ed->access == MOSQ_ACL_WRITE ? KIOT_PUBLISH : KIOT_SUBSCRIBE;
	int decision = kiot_acl_decide(&c->acl, action, ed->topic, ed->qos, ed->retain);
	if(decision == KIOT_NO_MATCH) return MOSQ_ERR_PLUGIN_DEFER;
	if(decision == KIOT_DENY) return MOSQ_ERR_ACL_DENIED;
	time_t now = now_s();
	if(now - c->confirmed < ttl_seconds) return MOSQ_ERR_SUCCESS;
	int allowed = still_allowed(c, ed->topic, action);
	if(allowed < 0){
		/* The registry does not answer: keep what it granted at connect and ask again in a few seconds, rather
		 * than cut off a connected fleet (or block the broker on every message) while it is away. */
		c->confirmed = now - ttl_seconds + RETRY_SECONDS;
		return MOSQ_ERR_SUCCESS;
	}
	if(allowed){
		c->confirmed = now;
		return MOSQ_ERR_SUCCESS;
	}
	/* Refused what its own rules granted: the device itself lost its access. */
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "kiot-auth: %s lost its access; disconnecting it", c->id);
	c->revoked = true;
	queue_kick(c->id);
	return MOSQ_ERR_ACL_DENIED;
}

static int on_tick(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	size_t count = kick_count;
	kick_count = 0;
	for(size_t i = 0; i < count; i++){
		mosquitto_kick_client_by_clientid(kicks[i], false);
		free(kicks[i]);
	}
	return MOSQ_ERR_SUCCESS;
}

static char *read_key(const char *file)
{
	FILE *f = fopen(file, "r");
	if(f == NULL) return NULL;
	char line[512] = "";
	char *ok = fgets(line, sizeof(line), f);
	fclose(f);
	if(ok == NULL) return NULL;
	line[strcspn(line, "\r\n \t")] = '\0';
	return line[0] ? strdup(line) : NULL;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options,
		int option_count)
{
	(void)userdata;
	const char *url = NULL, *key_file = NULL;
	long timeout_ms = 3000;
	for(int i = 0; i < option_count; i++){
		if(!strcmp(options[i].key, "url")) url = options[i].value;
		else if(!strcmp(options[i].key, "api_key_file")) key_file = options[i].value;
		else if(!strcmp(options[i].key, "ttl")) ttl_seconds = atol(options[i].value);
		else if(!strcmp(options[i].key, "timeout_ms")) timeout_ms = atol(options[i].value);
	}
	if(url == NULL || key_file == NULL || ttl_seconds < 0 || timeout_ms <= 0){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kiot-auth: plugin_opt_url and plugin_opt_api_key_file are required");
		return MOSQ_ERR_INVAL;
	}
	char *key = read_key(key_file);
	if(key == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kiot-auth: cannot read an API key from %s", key_file);
		return MOSQ_ERR_INVAL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	http = kiot_http_new(url, key, timeout_ms);
	free(key);
	if(http == NULL) return MOSQ_ERR_NOMEM;
	plugin_id = identifier;
	mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
	mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
	mosquitto_callback_register(plugin_id, MOSQ_EVT_TICK, on_tick, NULL, NULL);
	mosquitto_log_printf(MOSQ_LOG_INFO, "kiot-auth: asking %s (ttl %lds, timeout %ldms)", url, ttl_seconds, timeout_ms);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_TICK, on_tick, NULL);
	kiot_client_forget_all();
	for(size_t i = 0; i < kick_count; i++) free(kicks[i]);
	free(kicks);
	kicks = NULL;
	kick_count = kick_capacity = 0;
	kiot_http_free(http);
	http = NULL;
	curl_global_cleanup();
	return MOSQ_ERR_SUCCESS;
}
