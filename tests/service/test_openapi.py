"""schemathesis against the running service's own ``/openapi.json``: every operation, with
generated valid and invalid inputs (its coverage and fuzzing phases), answers without a 5xx
and as the document says: status codes, content types, headers and bodies; invalid input is
refused; undeclared methods are 405 with an exact ``Allow``; a call without the key is
refused.

It runs as the ``st`` command an operator would run (``python -m schemathesis.cli run``),
not through its pytest plugin, whose fixture loader does not work with pytest 9.

One check is left out: ``positive_data_acceptance`` (every schema-valid body accepted). The
service refuses text no store can keep (NUL, lone surrogates) and data nested deeper than
32 levels anywhere inside ``data``, which JSON Schema cannot say of an arbitrary JSON
object; ``tests/service/test_api.py`` proves each of those refusals is a 422 problem.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.service.conftest import Running

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
)


REJECTIONS = ("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429")
"""What refuses invalid input: schemathesis' own list (less its "5xx": a server error is
never a refusal here) and 413, the problem a body past the limit gets. A negative case
of ``/v1/sessions/update`` with a long non-ASCII ``unset`` list is over 80 kB: refused as
too large before any item's length is read, which is a rejection all the same."""


def test_schemathesis_finds_no_5xx_and_no_answer_off_the_document(
    running: Running, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    statuses = ", ".join(f'"{s}"' for s in REJECTIONS)
    config.write_text(f"[checks.negative_data_rejection]\nexpected-statuses = [{statuses}]\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{running.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {running.admin_key}",
            "--checks",
            ",".join(CHECKS),
            "--phases",
            "coverage,fuzzing",
            "--max-examples",
            "50",
            "--workers",
            "1",
            # One seed, so a CI run is repeatable.
            "--seed",
            "20261207",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-20000:]
    # Every operation of the document ran: the 23 before the consent work, its
    # POST /v1/sessions/consent and GET /.well-known/gpc.json, and GET /v1/analytics/summary.
    assert "Tested: 26" in report
    assert "Traceback" not in running.server.output()
