/* A fake NVML for the tests (libcairn_fake_nvml.so): the functions the jobs
 * plugin loads from libnvidia-ml.so.1 (plugins/compute/gpu.c), answering
 * for FAKE_NVML_GPUS fake GPUs (default 2), each with 16 GiB of memory of
 * which 1 GiB per index is in use, and a utilisation of 10% plus 20% per
 * index. FAKE_NVML_FAIL_INIT=1 makes nvmlInit_v2 fail (a driver that does
 * not start). Only the ABI matters: NVML's return codes (0 success) and
 * the layouts of nvmlMemory_t and nvmlUtilization_t. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_MAX 16
#define GIB (1024ull * 1024 * 1024)

typedef struct {
    unsigned long long total, free, used;
} fake_memory_t;
typedef struct {
    unsigned int gpu, memory;
} fake_util_t;

static int s_devices[FAKE_MAX];
static int s_started;

static unsigned int s_count(void)
{
    const char *e = getenv("FAKE_NVML_GPUS");
    int n = e ? atoi(e) : 2;
    return (unsigned int)(n < 0 ? 0 : n > FAKE_MAX ? FAKE_MAX : n);
}

/* A handle is a pointer to its index. */
static int s_index(void *dev)
{
    int *p = dev;
    return p >= s_devices && p < s_devices + FAKE_MAX ? *p : -1;
}

int nvmlInit_v2(void)
{
    const char *fail = getenv("FAKE_NVML_FAIL_INIT");
    if (fail && *fail == '1') return 999; /* NVML_ERROR_UNKNOWN */
    for (int i = 0; i < FAKE_MAX; i++) s_devices[i] = i;
    s_started = 1;
    return 0;
}

int nvmlShutdown(void)
{
    s_started = 0;
    return 0;
}

int nvmlSystemGetDriverVersion(char *out, unsigned int len)
{
    snprintf(out, len, "fake-1.0");
    return 0;
}

int nvmlDeviceGetCount_v2(unsigned int *n)
{
    if (!s_started) return 1; /* NVML_ERROR_UNINITIALIZED */
    *n = s_count();
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **dev)
{
    if (!s_started || i >= s_count()) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
    *dev = &s_devices[i];
    return 0;
}

int nvmlDeviceGetName(void *dev, char *out, unsigned int len)
{
    int i = s_index(dev);
    if (i < 0) return 2;
    snprintf(out, len, "Fake GPU %d", i);
    return 0;
}

int nvmlDeviceGetUUID(void *dev, char *out, unsigned int len)
{
    int i = s_index(dev);
    if (i < 0) return 2;
    snprintf(out, len, "GPU-fake-0000-%04d", i);
    return 0;
}

int nvmlDeviceGetMemoryInfo(void *dev, fake_memory_t *m)
{
    int i = s_index(dev);
    if (i < 0) return 2;
    m->total = 16 * GIB;
    m->used = (unsigned long long)(i + 1) * GIB;
    m->free = m->total - m->used;
    return 0;
}

int nvmlDeviceGetUtilizationRates(void *dev, fake_util_t *u)
{
    int i = s_index(dev);
    if (i < 0) return 2;
    u->gpu = (unsigned int)(10 + 20 * i);
    u->memory = 5;
    return 0;
}
