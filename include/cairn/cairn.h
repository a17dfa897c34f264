/* cairn/cairn.h — the umbrella header for Cairn's C SDK. */
#ifndef CAIRN_CAIRN_H
#define CAIRN_CAIRN_H

#include "cairn/audit.h"
#include "cairn/auth.h"
#include "cairn/client.h"
#include "cairn/err.h"
#include "cairn/jobs.h"
#include "cairn/msg.h"
#include "cairn/registry.h"
#include "cairn/secrets.h"
#include "cairn/tracking.h"

#endif
