/*
 * POSTs JSON to the registry over one kept-alive connection (libcurl easy handle reuse: curl_easy_perform keeps
 * the connection open for the next call). Mosquitto 2.0 runs plugins on its one network thread, so every call
 * blocks the broker: a short timeout bounds what a slow or cold registry costs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "kiot_auth.h"

#define MAX_ANSWER (64 * 1024)

struct kiot_http {
	CURL *curl;
	struct curl_slist *headers;
	char *base_url;
	char answer[MAX_ANSWER + 1];
	size_t length;
	time_t last_error_log;
};

static size_t collect(char *data, size_t size, size_t count, void *userdata)
{
	struct kiot_http *http = userdata;
	size_t n = size * count;
	if(http->length + n > MAX_ANSWER) return 0; /* too large for an auth answer: fail the call */
	memcpy(http->answer + http->length, data, n);
	http->length += n;
	return n;
}

struct kiot_http *kiot_http_new(const char *base_url, const char *api_key, long timeout_ms)
{
	struct kiot_http *http = calloc(1, sizeof(*http));
	if(http == NULL) return NULL;
	http->curl = curl_easy_init();
	http->base_url = strdup(base_url);
	char authorization[1024];
	snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", api_key);
	http->headers = curl_slist_append(NULL, "Content-Type: application/json");
	http->headers = curl_slist_append(http->headers, authorization);
	if(!http->curl || !http->base_url || !http->headers){
		kiot_http_free(http);
		return NULL;
	}
	curl_easy_setopt(http->curl, CURLOPT_HTTPHEADER, http->headers);
	curl_easy_setopt(http->curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(http->curl, CURLOPT_WRITEDATA, http);
	curl_easy_setopt(http->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(http->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	/* No signals from a timeout in the broker's process (libcurl: CURLOPT_NOSIGNAL, needed without c-ares). */
	curl_easy_setopt(http->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(http->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(http->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	return http;
}

void kiot_http_free(struct kiot_http *http)
{
	if(http == NULL) return;
	if(http->curl) curl_easy_cleanup(http->curl);
	curl_slist_free_all(http->headers);
	free(http->base_url);
	free(http);
}

/* Logs a failure at most every 10 s: a registry that is down would otherwise log once per connect attempt. */
static void failed(struct kiot_http *http, const char *path, const char *what, long detail)
{
	time_t now = time(NULL);
	if(now - http->last_error_log < 10) return;
	http->last_error_log = now;
	mosquitto_log_printf(MOSQ_LOG_WARNING, "kiot-auth: POST %s%s failed: %s (%ld)", http->base_url, path, what, detail);
}

/* The parsed answer of a 200, or NULL (transport error, timeout, another status, not JSON). */
cJSON *kiot_http_post(struct kiot_http *http, const char *path, cJSON *body)
{
	char url[2048];
	snprintf(url, sizeof(url), "%s%s", http->base_url, path);
	char *text = cJSON_PrintUnformatted(body);
	if(text == NULL) return NULL;
	http->length = 0;
	curl_easy_setopt(http->curl, CURLOPT_URL, url);
	curl_easy_setopt(http->curl, CURLOPT_POSTFIELDS, text);
	CURLcode rc = curl_easy_perform(http->curl);
	free(text);
	if(rc != CURLE_OK){
		failed(http, path, curl_easy_strerror(rc), (long)rc);
		return NULL;
	}
	long status = 0;
	curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &status);
	if(status != 200){
		failed(http, path, "HTTP status", status);
		return NULL;
	}
	http->answer[http->length] = '\0';
	cJSON *answer = cJSON_Parse(http->answer);
	if(answer == NULL) failed(http, path, "answer is not JSON", 0);
	return answer;
}
