"""Every operation of the OpenAPI schema, called with generated input by schemathesis: no answer
is a server error, and every answer (status, content type, body) is one the schema documents.

Bounded to stay in the test suite: a few examples an operation, derandomised (the same cases
every run), no deadline. It calls the WSGI app in-process, signed in with ada's API token; ada
is the admin of a project with a volume, a label version and a job, so that some generated ids
find something (most are 404s, which must then be documented too).
"""

import zlib

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
# The coverage phase tries every boundary of every field (hundreds of cases an operation): too
# slow for the suite. Examples and fuzzing stay.
schema.config.phases.coverage.enabled = False


@pytest.fixture
def token(db, ada, ivy, alice, tmp_path, settings):
    import numpy as np
    import tifffile
    from rest_framework.authtoken.models import Token

    from annotation.models import Membership
    from annotation.services import label_version_create, membership_add, project_create, volume_import
    from segmentation.services import segmentation_job_create

    settings.EZQUANT_DATA_DIR = tmp_path / "data"
    project = project_create(name="Nuclei 101", user=ada)
    membership_add(project=project, user=ivy, role=Membership.Role.INSTRUCTOR)
    membership_add(project=project, user=alice)
    image = np.zeros((32, 32), np.uint16)
    image[8:16, 8:16] = 900
    tifffile.imwrite(tmp_path / "cells.tif", image)
    volume = volume_import(project=project, src_path=tmp_path / "cells.tif", name="cells", user=ada)
    labels = (image > 0).astype(np.uint32)[None]
    label_version_create(volume=volume, labels=labels, user=ada, source="upload")
    job = segmentation_job_create(volume=volume, user=ada, params={"diameter": 8.0})
    ids = {"project_id": project.id, "volume_id": volume.id, "job_id": job.id, "version": "v1"}
    yield Token.objects.create(user=ada).key, ids
    from annotation.stores import volume_store_at

    volume_store_at.cache_clear()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_it_answers_every_operation_as_the_schema_says(case, token):
    key, ids = token
    # Every other case on the fixture's objects (the rest keeps its generated ids: mostly 404s),
    # so that the answers of found objects are checked against the schema too.
    if case.path_parameters and zlib.crc32(repr(sorted(case.path_parameters.items())).encode()) % 2 == 0:
        case.path_parameters = {name: ids.get(name, value) for name, value in case.path_parameters.items()}
    case.call_and_validate(headers={"Authorization": f"Token {key}"}, checks=CHECKS)
