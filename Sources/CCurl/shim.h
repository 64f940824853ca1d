#ifndef PLUMB_CCURL_SHIM_H
#define PLUMB_CCURL_SHIM_H

#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic and cannot be called from Swift. One wrapper per argument type.

typedef size_t (*plumb_curl_write_fn)(char *data, size_t size, size_t count, void *context);

static inline CURLcode plumb_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode plumb_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode plumb_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode plumb_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode plumb_curl_setopt_write_function(CURL *handle, CURLoption option, plumb_curl_write_fn value) {
    return curl_easy_setopt(handle, option, value);
}

typedef int (*plumb_curl_progress_fn)(void *context, curl_off_t download_total, curl_off_t download_now, curl_off_t upload_total,
                                      curl_off_t upload_now);

static inline CURLcode plumb_curl_setopt_progress_function(CURL *handle, CURLoption option, plumb_curl_progress_fn value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode plumb_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode plumb_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode plumb_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode plumb_curl_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif
