"""examples/service-to-service (issue 21 §6): a job gets its own token by client
credentials (RFC 6749 §4.4, RFC 8707 resource) and reads the videos API with it."""

from __future__ import annotations

import sys

from tests.examples.conftest import EXAMPLES, ExamplesIdp

JOB = EXAMPLES / "service-to-service" / "report.py"


def test_the_job_reads_the_api_with_its_own_token(examples_idp: ExamplesIdp, start_example, python_videos_api):
    env = {"ISSUER": examples_idp.issuer, "API_URL": f"http://127.0.0.1:{python_videos_api.port}"}
    job = start_example("report", [sys.executable, str(JOB)], env=env)
    assert job.wait() == 0, job.output()
    assert "1 video(s):\n- Welcome to Tessera (owner system)" in job.output()

    wrong = start_example("report-wrong-secret", [sys.executable, str(JOB)],
                          env={**env, "REPORTS_CLIENT_SECRET": "change-me-not-the-secret-0123456789"})
    assert wrong.wait() == 1
    assert "token request refused: invalid_client" in wrong.output()
