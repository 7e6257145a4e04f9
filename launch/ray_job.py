"""Submit a minicluster run to an existing Ray cluster as a Ray job, follow it, exit as it did.

usage: python launch/ray_job.py --address http://HEAD:8265 [--working-dir DIR] -- \
           -c configs/default.yaml --nproc 8 --gpus-per-worker 1 --placement spread

Everything after `--` goes to `minicluster run --launcher ray --ray-address auto` (the job's
driver runs on the head node and joins the cluster it runs in). Its output is printed as it
comes; the script exits with the driver's exit code (0 ok, 1 check failed, 2 bad input, 3 run
failed, 130 interrupted). Ctrl-C stops the job. Every node needs minicluster[train] installed
(the same version), or pass `--working-dir` with a checkout to ship it with the job.
The result and rank 0's files are written on the head node, under `--out` (default: runs/<id>
in the job's working directory). Equivalent by hand:

    ray job submit --address http://HEAD:8265 -- \
        minicluster run --launcher ray --ray-address auto -c configs/default.yaml --nproc 8
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", required=True, help="the Ray dashboard: http://HEAD:8265")
    p.add_argument("--working-dir", help="a directory to ship with the job (runtime_env)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then `minicluster run` flags")
    a = p.parse_args()
    run_args = a.args[1:] if a.args[:1] == ["--"] else a.args
    try:
        from ray.job_submission import JobStatus, JobSubmissionClient
    except ImportError:
        print("ray_job.py needs Ray: pip install 'minicluster[ray]'", file=sys.stderr)
        return 2
    entrypoint = shlex.join(
        ["minicluster", "run", "--launcher", "ray", "--ray-address", "auto", *run_args]
    )
    client = JobSubmissionClient(a.address)
    runtime_env = {"working_dir": a.working_dir} if a.working_dir else None
    job = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    print(f"ray_job: submitted {job}: {entrypoint}", file=sys.stderr)
    shown = 0
    try:
        while True:
            status = client.get_job_status(job)
            logs = client.get_job_logs(job)
            print(logs[shown:], end="", flush=True)
            shown = len(logs)
            if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
                break
            time.sleep(1)
    except KeyboardInterrupt:
        client.stop_job(job)
        print(f"ray_job: stopped {job}", file=sys.stderr)
        return 130
    code = getattr(client.get_job_info(job), "driver_exit_code", None)
    if code is None:
        code = 0 if status == JobStatus.SUCCEEDED else 3
    print(f"ray_job: {job} {status}, exit code {code}", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
