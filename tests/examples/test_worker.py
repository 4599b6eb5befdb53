"""examples/worker (issue 21 §7): RFC 8693 token exchange — the worker trades a user's
access token for one naming the user (`sub`) and itself (`act`, §4.1), narrowed to the
job's scope, and writes to the videos API for the user."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.examples.conftest import EXAMPLES, ExamplesIdp, user_tokens

WORKER = EXAMPLES / "worker" / "worker.py"


def run_worker(env: dict, job: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER)], input=json.dumps(job), capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


def test_the_worker_acts_for_the_user(examples_idp: ExamplesIdp, python_videos_api, page):
    env = {"ISSUER": examples_idp.issuer, "API_URL": f"http://127.0.0.1:{python_videos_api.port}"}
    user = user_tokens(page, examples_idp)  # signed in through the BFF's client
    done = run_worker(env, {"title": "holiday.mp4 (720p)", "subject_token": user["access_token"]})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scope videos.write" in done.stdout
    created = json.loads(done.stdout.strip().splitlines()[-1])
    caller = created["caller"]
    assert caller["client_id"] == "worker" and caller["act"] == {"sub": "worker"}
    assert caller["sub"] == created["video"]["owner"] != "worker"  # the user's id
    assert caller["scope"] == "videos.write"


def test_tokens_the_policy_does_not_allow_are_refused(examples_idp: ExamplesIdp, python_videos_api):
    """A service's own token (client `reports`, not in `from_clients`) is invalid_grant."""
    env = {"ISSUER": examples_idp.issuer, "API_URL": f"http://127.0.0.1:{python_videos_api.port}"}
    refused = run_worker(env, {"title": "x", "subject_token": examples_idp.client_token("reports")})
    assert refused.returncode == 1
    assert "token exchange refused: invalid_grant" in refused.stderr
    forged = run_worker(env, {"title": "x", "subject_token": "not-a-token"})
    assert forged.returncode == 1 and "invalid_grant" in forged.stderr
