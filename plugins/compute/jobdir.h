/* plugins/compute/jobdir.h — the files of one job's directory: how the
 * jobs plugin and the job's supervisor (cairn-job-shim) talk.
 *
 * Each job has a directory STATE/jobs/<workspace>/<name>/ (mode 0700). The
 * plugin writes the three spec files, then starts the shim detached (its
 * own session, reparented away from the plugin), and from then on only
 * reads what the shim writes. Nothing passes through a pipe or a socket,
 * so that the plugin (or cairnd) may die and restart at any moment: the
 * shim keeps the job's process group, its log and, at the end, its exit
 * record on disk, and a plugin that comes back reads them.
 *
 *   written by the plugin, before the shim starts
 *     JOB_CMD      the command, run as /bin/sh -c CMD
 *     JOB_ENV      the job's whole environment: KEY=VALUE entries, each
 *                  ended by a NUL byte
 *     JOB_LIMITS   "timeout_s=N\ngrace_ms=M\n" (N = 0: no timeout)
 *     JOB_WORK/    the job's working directory
 *   written by the shim (each file whole: written beside, fsynced, renamed)
 *     JOB_SHIM_PID "PID STARTTIME PGID\n": the shim's pid, its start time
 *                  (field 22 of /proc/PID/stat, to tell a reused pid), and
 *                  the job's process group (the command's pid)
 *     JOB_LOG      the command's stdout and stderr, appended as they come
 *     JOB_EXIT     the end: "reason=R\ncode=C\nsignal=S\nended_ms=T\n";
 *                  R is exited (C its exit status, S 0), signaled (S the
 *                  signal), canceled or timeout (the tree was stopped:
 *                  SIGTERM to the group, SIGKILL after grace_ms), or
 *                  failed (the command could not be started; C 127)
 *
 * The shim takes SIGTERM as "cancel": the group gets SIGTERM, then SIGKILL
 * after grace_ms. When the command itself ends, whatever is left of its
 * process group is killed (SIGKILL): nothing of the tree outlives it. */
#ifndef CAIRN_COMPUTE_JOBDIR_H
#define CAIRN_COMPUTE_JOBDIR_H

#define JOB_CMD "cmd"
#define JOB_ENV "env"
#define JOB_LIMITS "limits"
#define JOB_WORK "work"
#define JOB_SHIM_PID "shim.pid"
#define JOB_LOG "output.log"
#define JOB_EXIT "exit"

#define JOB_SHIM_NAME "cairn-job-shim"

#endif
