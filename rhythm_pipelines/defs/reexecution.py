"""Re-executing a failed run from failure, as a new run through the instance's queue.

Dagster's public door for this is its GraphQL API (``launchPipelineReexecution`` with ``FROM_FAILURE``, what
the UI's "Re-execute from failure" button calls): it creates the child run with the parent and root links,
runs only the failed steps and those after them, and submits it to the run coordinator, so the queue, the run
launcher and the concurrency limits apply. We call it through the ``dagster-graphql`` command on a workspace
that names the parent run's own code location (from its recorded origin), with the instance's
``DAGSTER_HOME``. A run executed outside any workspace (``dagster job execute``) has no such origin and is not
re-executed here: the caller says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

REEXEC_TAG = "rhythm/healing_rerun_of"  # the failed run healing re-executes
PARENT_RUN_TAG, ROOT_RUN_TAG = "dagster/parent_run_id", "dagster/root_run_id"  # set by Dagster on re-execution
MUTATION = """
mutation($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status parentRunId rootRunId } }
    ... on PythonError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on UnauthorizedError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
  }
}
"""


@dataclass(frozen=True)
class Submitted:
    ok: bool
    detail: str
    run_id: str = ""


def workspace_entry(run: dg.DagsterRun) -> dict[str, Any] | None:
    """A workspace.yaml entry loading the parent run's own code location, or None if it has no recorded origin."""
    origin = run.remote_job_origin
    if origin is None:
        return None
    loc = origin.repository_origin.code_location_origin
    target = getattr(loc, "loadable_target_origin", None)
    if target is not None:
        common = {"location_name": loc.location_name}
        for key in ("attribute", "working_directory", "executable_path"):
            if getattr(target, key, None):
                common[key] = getattr(target, key)
        if target.module_name:
            return {"python_module": {"module_name": target.module_name, **common}}
        if target.python_file:
            return {"python_file": {"relative_path": target.python_file, **common}}
        if target.package_name:
            return {"python_package": {"package_name": target.package_name, **common}}
        return None
    if getattr(loc, "port", None) or getattr(loc, "socket", None):
        server = {"host": loc.host, "location_name": loc.location_name}
        server |= {"port": loc.port} if loc.port else {"socket": loc.socket}
        return {"grpc_server": server}
    return None


def submit_reexecution(
    instance: dg.DagsterInstance, parent_run_id: str, tags: dict[str, str], timeout_s: float = 120
) -> Submitted:
    """Submit ``parent_run_id`` for re-execution from failure through the instance's run coordinator."""
    parent = instance.get_run_by_id(parent_run_id)
    if parent is None:
        return Submitted(False, f"run {parent_run_id} is not in this instance")
    if parent.status != dg.DagsterRunStatus.FAILURE:
        return Submitted(False, f"run {parent_run_id} is {parent.status.value}, not failed: nothing to re-execute")
    entry = workspace_entry(parent)
    if entry is None:
        return Submitted(
            False,
            f"run {parent_run_id} ({parent.job_name}) was executed outside a workspace (no code location recorded): "
            "re-execute it from the UI or with the CLI",
        )
    exe = Path(sys.executable).parent / "dagster-graphql"
    variables = {
        "params": {
            "parentRunId": parent_run_id,
            "strategy": "FROM_FAILURE",
            "extraTags": [{"key": k, "value": v} for k, v in tags.items()],
        }
    }
    with tempfile.TemporaryDirectory(prefix="rhythm-reexec-") as tmp:
        ws, out = Path(tmp) / "workspace.yaml", Path(tmp) / "out.json"
        ws.write_text(yaml.safe_dump({"load_from": [entry]}))
        cmd = [str(exe), "-w", str(ws), "-t", MUTATION, "-v", json.dumps(variables), "-o", str(out)]
        env = {**os.environ, "DAGSTER_HOME": str(instance.root_directory)}
        try:
            # our own CLI with an argument list, no shell
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)  # noqa: S603
        except subprocess.TimeoutExpired:  # it may have submitted the run before it was stopped
            children = instance.get_runs(filters=dg.RunsFilter(tags={PARENT_RUN_TAG: parent_run_id}))
            mine = [r for r in children if all(r.tags.get(k) == v for k, v in tags.items())]
            if mine:
                return Submitted(True, f"submitted run {mine[0].run_id} (found after a slow answer)", mine[0].run_id)
            return Submitted(False, f"dagster-graphql did not answer within {timeout_s:.0f} s")
        text = out.read_text() if out.exists() else proc.stdout
    try:
        answer = json.loads(text)["data"]["launchPipelineReexecution"]
    except (ValueError, KeyError, TypeError):
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        return Submitted(False, f"dagster-graphql failed (exit {proc.returncode}): {' | '.join(tail)[:400]}")
    if answer.get("__typename") != "LaunchRunSuccess":
        why = answer.get("message") or json.dumps(answer)[:300]
        return Submitted(False, f"re-execution of {parent_run_id} refused: {answer.get('__typename')}: {why}")
    run = answer["run"]
    detail = f"submitted run {run['runId']} ({run['status']}), from failure of {parent_run_id}"
    return Submitted(True, detail, run["runId"])
