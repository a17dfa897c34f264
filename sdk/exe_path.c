/* A helper program's path (exe_path.h). */
#define _GNU_SOURCE
#include "exe_path.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cairn_sibling_exe(const char *setting, const char *name, char *out, size_t cap,
                      cairn_err_t *err)
{
    int n;
    if (setting && *setting) {
        n = snprintf(out, cap, "%s", setting);
    } else {
        char self[PATH_MAX];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                                 "cannot find this executable: %s", strerror(errno));
        self[len] = '\0';
        n = snprintf(out, cap, "%s/%s", dirname(self), name);
    }
    if (n < 0 || (size_t)n >= cap)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "the path of %s is too long", name);
    return 0;
}
