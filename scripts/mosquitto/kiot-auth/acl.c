/*
 * The ACL an allow answer of POST /broker/authn carries, in EMQX's format (docs.emqx.com, "Access Control
 * List", new format since 5.5, in HTTP authn answers since 5.8): rules checked in order, the first that matches
 * decides; when none matches the check goes on to the next authorizer (here: the next plugin in Mosquitto's chain).
 */
#include <stdlib.h>
#include <string.h>

#include "kiot_auth.h"

/*
 * Whether every topic `topic` can stand for lies within `rule` (MQTT 3.1.1 §4.7): for a topic name, whether the
 * filter matches it; for a subscription filter, whether the rule filter matches everything it matches. A `+` in
 * the rule covers any one level but not `#`; a literal level covers only itself (so a `+` asked for is not
 * covered by a literal); `#` covers the rest, the parent level included (§4.7.1.2). Topics starting with `$` are
 * not matched by a rule starting with a wildcard (§4.7.2).
 */
bool kiot_filter_covers(const char *rule, const char *topic)
{
	const char *r = rule, *t = topic;
	if(t[0] == '$' && (r[0] == '+' || r[0] == '#')) return false;
	for(;;){
		const char *r_end = strchr(r, '/');
		size_t r_len = r_end ? (size_t)(r_end - r) : strlen(r);
		if(r_len == 1 && r[0] == '#') return true;
		if(t == NULL) return false;
		const char *t_end = strchr(t, '/');
		size_t t_len = t_end ? (size_t)(t_end - t) : strlen(t);
		if(r_len == 1 && r[0] == '+'){
			if(t_len == 1 && t[0] == '#') return false;
		}else if(r_len != t_len || memcmp(r, t, r_len) != 0){
			return false;
		}
		if(r_end == NULL) return t_end == NULL;
		r = r_end + 1;
		t = t_end ? t_end + 1 : NULL;
	}
}

static int parse_rule(const cJSON *item, struct kiot_rule *rule)
{
	const cJSON *permission = cJSON_GetObjectItemCaseSensitive(item, "permission");
	const cJSON *action = cJSON_GetObjectItemCaseSensitive(item, "action");
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(item, "topic");
	const cJSON *qos = cJSON_GetObjectItemCaseSensitive(item, "qos");
	const cJSON *retain = cJSON_GetObjectItemCaseSensitive(item, "retain");
	if(!cJSON_IsString(permission) || !cJSON_IsString(action) || !cJSON_IsString(topic)) return -1;
	if(!strcmp(permission->valuestring, "allow")) rule->allow = true;
	else if(!strcmp(permission->valuestring, "deny")) rule->allow = false;
	else return -1;
	if(!strcmp(action->valuestring, "publish")) rule->actions = KIOT_PUBLISH;
	else if(!strcmp(action->valuestring, "subscribe")) rule->actions = KIOT_SUBSCRIBE;
	else if(!strcmp(action->valuestring, "all")) rule->actions = KIOT_PUBLISH | KIOT_SUBSCRIBE;
	else return -1;
	const char *text = topic->valuestring;
	rule->exact = strncmp(text, "eq ", 3) == 0;
	if(rule->exact) text += 3;
	if(text[0] == '\0') return -1;
	rule->qos_mask = 0;
	if(cJSON_IsArray(qos)){
		const cJSON *level;
		cJSON_ArrayForEach(level, qos){
			if(!cJSON_IsNumber(level) || level->valueint < 0 || level->valueint > 2) return -1;
			rule->qos_mask |= 1 << level->valueint;
		}
	}
	rule->retain = cJSON_IsBool(retain) ? cJSON_IsTrue(retain) : -1;
	rule->topic = strdup(text);
	return rule->topic ? 0 : -1;
}

/* Fails (-1) on any malformed rule: an ACL half understood is not enforced, the client is refused instead. */
int kiot_acl_parse(const cJSON *array, struct kiot_acl *out)
{
	out->count = 0;
	out->rules = NULL;
	if(array == NULL) return 0;
	if(!cJSON_IsArray(array)) return -1;
	int size = cJSON_GetArraySize(array);
	if(size == 0) return 0;
	out->rules = calloc((size_t)size, sizeof(struct kiot_rule));
	if(out->rules == NULL) return -1;
	const cJSON *item;
	cJSON_ArrayForEach(item, array){
		if(parse_rule(item, &out->rules[out->count]) != 0){
			kiot_acl_free(out);
			return -1;
		}
		out->count++;
	}
	return 0;
}

void kiot_acl_free(struct kiot_acl *acl)
{
	for(size_t i = 0; i < acl->count; i++) free(acl->rules[i].topic);
	free(acl->rules);
	acl->rules = NULL;
	acl->count = 0;
}

int kiot_acl_decide(const struct kiot_acl *acl, int action, const char *topic, uint8_t qos, bool retain)
{
	for(size_t i = 0; i < acl->count; i++){
		const struct kiot_rule *rule = &acl->rules[i];
		if(!(rule->actions & action)) continue;
		if(rule->qos_mask && qos <= 2 && !(rule->qos_mask & (1 << qos))) continue;
		if(action == KIOT_PUBLISH && retain && rule->retain == 0) continue;
		bool match = rule->exact ? strcmp(rule->topic, topic) == 0 : kiot_filter_covers(rule->topic, topic);
		if(match) return rule->allow ? KIOT_ALLOW : KIOT_DENY;
	}
	return KIOT_NO_MATCH;
}
