/* The machine's GPUs, through NVML loaded at run time (compute.h).
 *
 * NVML (libnvidia-ml.so.1) comes with NVIDIA's driver, not with Cairn: it
 * is opened with dlopen, so that Cairn builds and runs where there is no
 * driver (zero GPUs, no error) and needs no CUDA headers. The few types
 * used are declared here as NVML's ABI fixes them. The `nvml_library`
 * setting names another file (the tests' fake NVML, tests/fakes/). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute.h"

typedef int nvml_ret_t; /* nvmlReturn_t: 0 is NVML_SUCCESS */
typedef void *nvml_device_t;
typedef struct {
    unsigned long long total, free, used;
} nvml_memory_t;
typedef struct {
    unsigned int gpu, memory;
} nvml_util_t;

typedef struct nvml_api {
    nvml_ret_t (*init)(void);
    nvml_ret_t (*shutdown)(void);
    nvml_ret_t (*count)(unsigned int *);
    nvml_ret_t (*handle)(unsigned int, nvml_device_t *);
    nvml_ret_t (*name)(nvml_device_t, char *, unsigned int);
    nvml_ret_t (*uuid)(nvml_device_t, char *, unsigned int);
    nvml_ret_t (*memory)(nvml_device_t, nvml_memory_t *);
    nvml_ret_t (*util)(nvml_device_t, nvml_util_t *);
    nvml_ret_t (*driver)(char *, unsigned int);
} nvml_api_t;

struct gpus {
    void *lib;
    nvml_api_t api;
    int n;
    nvml_device_t dev[GPU_MAX];
    char source[256]; /* how the GPUs were found, or why none were */
};

/* dlsym into a function pointer without the object/function cast that
 * ISO C leaves undefined: the symbol's address is copied. */
static bool s_sym(void *lib, const char *name, void *fn_out)
{
    void *p = dlsym(lib, name);
    if (!p) return false;
    memcpy(fn_out, &p, sizeof p);
    return true;
}

static bool s_bind(gpus_t *g)
{
    nvml_api_t *a = &g->api;
    return s_sym(g->lib, "nvmlInit_v2", &a->init) &&
           s_sym(g->lib, "nvmlShutdown", &a->shutdown) &&
           s_sym(g->lib, "nvmlDeviceGetCount_v2", &a->count) &&
           s_sym(g->lib, "nvmlDeviceGetHandleByIndex_v2", &a->handle) &&
           s_sym(g->lib, "nvmlDeviceGetName", &a->name) &&
           s_sym(g->lib, "nvmlDeviceGetUUID", &a->uuid) &&
           s_sym(g->lib, "nvmlDeviceGetMemoryInfo", &a->memory) &&
           s_sym(g->lib, "nvmlDeviceGetUtilizationRates", &a->util) &&
           s_sym(g->lib, "nvmlSystemGetDriverVersion", &a->driver);
}

/* Open NVML and list the devices; any failure leaves zero GPUs and says
 * why in source. */
static void s_discover(gpus_t *g, const char *library)
{
    g->lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!g->lib) {
        snprintf(g->source, sizeof g->source, "none (no NVIDIA driver: %s not found)",
                 library);
        return;
    }
    unsigned int count = 0;
    if (!s_bind(g)) {
        snprintf(g->source, sizeof g->source, "none (%s lacks NVML's functions)",
                 library);
    } else if (g->api.init() != 0) {
        snprintf(g->source, sizeof g->source, "none (NVML did not start)");
    } else if (g->api.count(&count) != 0) {
        g->api.shutdown();
        snprintf(g->source, sizeof g->source, "none (NVML could not count GPUs)");
    } else {
        char driver[80] = "?";
        g->api.driver(driver, sizeof driver);
        driver[sizeof driver - 1] = '\0';
        for (unsigned int i = 0; i < count && g->n < GPU_MAX; i++)
            if (g->api.handle(i, &g->dev[g->n]) == 0) g->n++;
        snprintf(g->source, sizeof g->source, "nvml (%s, driver %.80s)", library,
                 driver);
        return;
    }
    dlclose(g->lib);
    g->lib = NULL;
}

gpus_t *gpus_open(const char *library)
{
    gpus_t *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    s_discover(g, library && *library ? library : "libnvidia-ml.so.1");
    return g;
}

void gpus_close(gpus_t **self_p)
{
    gpus_t *g = *self_p;
    if (!g) return;
    if (g->lib) {
        g->api.shutdown();
        dlclose(g->lib);
    }
    free(g);
    *self_p = NULL;
}

int gpus_count(const gpus_t *g)
{
    return g ? g->n : 0;
}

const char *gpus_source(const gpus_t *g)
{
    return g ? g->source : "none";
}

int gpus_info(const gpus_t *g, int i, gpu_info_t *out)
{
    *out = (gpu_info_t){.index = i};
    if (!g || i < 0 || i >= g->n) return -1;
    nvml_device_t d = g->dev[i];
    nvml_memory_t mem = {0};
    nvml_util_t util = {0};
    if (g->api.name(d, out->name, sizeof out->name) != 0)
        snprintf(out->name, sizeof out->name, "GPU %d", i);
    if (g->api.uuid(d, out->uuid, sizeof out->uuid) != 0) out->uuid[0] = '\0';
    out->name[sizeof out->name - 1] = out->uuid[sizeof out->uuid - 1] = '\0';
    if (g->api.memory(d, &mem) == 0) {
        out->memory_bytes = mem.total;
        out->memory_used_bytes = mem.used;
    }
    out->utilization = g->api.util(d, &util) == 0 ? (int)util.gpu : -1;
    return 0;
}

/* ---- a set of GPUs as text: "0,2" ----------------------------------------- */

uint64_t gpus_parse(const char *list)
{
    uint64_t set = 0;
    for (const char *p = list; p && *p;) {
        char *end;
        long i = strtol(p, &end, 10);
        if (end == p) break;
        if (i >= 0 && i < GPU_MAX) set |= 1ull << i;
        p = *end == ',' ? end + 1 : end;
    }
    return set;
}

void gpus_format(uint64_t set, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < GPU_MAX && n < cap; i++)
        if (set & (1ull << i))
            n += (size_t)snprintf(out + n, cap - n, "%s%d", n ? "," : "", i);
}
