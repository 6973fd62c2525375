/*
 * The clients kiot-auth admitted, found by the broker's client pointer (what an ACL check names) and by client id:
 * two chained hash tables over the same entries.
 */
#include <stdlib.h>
#include <string.h>

#include "kiot_auth.h"

#define BUCKETS 65536

static struct client *table[BUCKETS];
static struct client *by_id[BUCKETS];

static size_t bucket(const struct mosquitto *mosq)
{
	uintptr_t p = (uintptr_t)mosq;
	return (size_t)((p >> 4) ^ (p >> 20)) % BUCKETS;
}

struct client *kiot_client_find(const struct mosquitto *mosq)
{
	for(struct client *c = table[bucket(mosq)]; c; c = c->next){
		if(c->mosq == mosq) return c;
	}
	return NULL;
}

static size_t id_bucket(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for(const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
	return h % BUCKETS;
}

static void drop(struct client *c)
{
	struct client **link;
	for(link = &table[bucket(c->mosq)]; *link && *link != c; link = &(*link)->next);
	if(*link) *link = c->next;
	for(link = &by_id[id_bucket(c->id)]; *link && *link != c; link = &(*link)->next_by_id);
	if(*link) *link = c->next_by_id;
	kiot_acl_free(&c->acl);
	free(c->id);
	free(c->username);
	free(c);
}

void kiot_client_forget(const struct mosquitto *mosq)
{
	struct client *c = kiot_client_find(mosq);
	if(c) drop(c);
}

void kiot_client_forget_id(const char *id)
{
	struct client *c = by_id[id_bucket(id)];
	while(c){
		struct client *next = c->next_by_id;
		if(!strcmp(c->id, id)) drop(c);
		c = next;
	}
}

void kiot_client_add(struct client *c)
{
	size_t b = bucket(c->mosq);
	c->next = table[b];
	table[b] = c;
	b = id_bucket(c->id);
	c->next_by_id = by_id[b];
	by_id[b] = c;
}

void kiot_client_forget_all(void)
{
	for(size_t b = 0; b < BUCKETS; b++){
		while(table[b]) drop(table[b]);
	}
}
