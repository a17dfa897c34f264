/* sdk/exe_path.h — where a plugin finds a helper program it runs (the
 * jobs plugin's cairn-job-shim, the scorer's cairn-batch-score): the
 * setting that names it, or else the program of that name beside the
 * executable the plugin runs in (cairnd and cairn-plugin-host are
 * installed, and built, in the same folder as the helpers). Part of the
 * static library cairn_exe_path; no ABI of its own. */
#ifndef CAIRN_EXE_PATH_H
#define CAIRN_EXE_PATH_H

#include <stddef.h>

#include "cairn/err.h"

/* setting when it is not NULL or empty, else DIR/name with DIR this
 * executable's folder, into out (cap bytes). 0, or -1 with a 500 when this
 * executable cannot be found or the path does not fit. */
int cairn_sibling_exe(const char *setting, const char *name, char *out, size_t cap,
                      cairn_err_t *err);

#endif
