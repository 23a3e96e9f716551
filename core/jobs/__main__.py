"""``python -m core.jobs run <workspace> <id>``: run one background job (started by :class:`core.jobs.JobRunner`)."""

import sys

from core.jobs.runner import run_job

if len(sys.argv) != 4 or sys.argv[1] != "run":
    print("usage: python -m core.jobs run <workspace> <job id>", file=sys.stderr)
    sys.exit(2)
sys.exit(run_job(sys.argv[2], sys.argv[3]))
