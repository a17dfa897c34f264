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
 *     JOB_LIMITS   "timeout_s=N\ngrace_ms=M\n" (N = 0: no timeout), and when
 *                  the job asked for resources "memory_bytes=B\n" (the
 *                  command's address space, RLIMIT_AS) and "cpu_list=A,B\n"
 *                  (its CPU affinity), both inherited by its whole tree;
 *                  or, where the plugin made the job a cgroup (v2) with its
 *                  limits, "cgroup=PATH\n" instead: the command writes its
 *                  pid to PATH/cgroup.procs before exec
 *     JOB_WORK/    the job's working directory
 *     JOB_PRELUDE  (when the spec names an environment or secrets) what
 *                  cairn-job-env (jobenv.c) sets up inside the job before
 *                  the command: JOB_CMD is then "exec cairn-job-env
 *                  PRELUDE /bin/sh -c '...'"
 *   written by the command, if it likes
 *     JOB_REASON   why it failed, in a sentence ($CAIRN_JOB_REASON_FILE names
 *                  it): a command that exits non-zero with this file written
 *                  fails the job with "the command exited with status C:
 *                  <its first JOB_REASON_MAX bytes>" (Kubernetes'
 *                  terminationMessagePath); removed before each attempt
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
 * process group is killed (SIGKILL): nothing of the tree outlives it.
 *
 * Details the shim (shim.c) settles:
 *   - JOB_LOG is opened first, so that a spec it cannot read is told there
 *     (a line "cairn-job-shim: ...") and ends in JOB_EXIT failed, code 127,
 *     without JOB_SHIM_PID: nothing was started.
 *   - JOB_CMD: at most 1 MiB, no NUL byte. JOB_ENV: at most 1 MiB and 4096
 *     entries, each KEY=VALUE with a KEY, the last one ended by its NUL too;
 *     an empty file is an empty environment. JOB_LIMITS: at most 4 KiB;
 *     lines of other keys are ignored, a key left out keeps its default
 *     (timeout_s 0, grace_ms 10000), a value is decimal, 0 to 2^31-1; the
 *     three files must exist.
 *   - JOB_WORK is made (0700) if missing.
 *   - JOB_SHIM_PID is written once the command runs, so it exists only for
 *     a started job. The files are replaced through NAME.tmp beside them.
 *   - canceled and timeout keep C and S of how the command then ended
 *     (C 128+S if a signal ended it, S 0 otherwise); failed has S 0.
 *   - SIGINT and SIGHUP cancel as SIGTERM does. What the command orphans
 *     comes back to the shim (its child subreaper) and is killed too, even
 *     if it left the process group (setsid).
 *   - JOB_EXIT is written after the whole tree is gone and reaped. The
 *     shim's own exit status: 0 once JOB_EXIT is written for a command it
 *     tried to start, 1 when it could not be prepared or a file could not be
 *     written, 2 for bad arguments. */
#ifndef CAIRN_COMPUTE_JOBDIR_H
#define CAIRN_COMPUTE_JOBDIR_H

#define JOB_CMD "cmd"
#define JOB_ENV "env"
#define JOB_LIMITS "limits"
#define JOB_WORK "work"
#define JOB_PRELUDE "prelude" /* for cairn-job-env, when the job needs it */
#define JOB_SHIM_PID "shim.pid"
#define JOB_LOG "output.log"
#define JOB_EXIT "exit"
#define JOB_REASON "reason"

#define JOB_SHIM_NAME "cairn-job-shim"
#define JOB_ENV_NAME "cairn-job-env"
#define JOB_TRAIN_NAME "cairn-train"
#define JOB_TRAIN_SPEC "train.mp" /* a train job's whole spec, for cairn-train */

#endif
