"""The JUnit schema the --junit files are validated against, as a pytest fixture.

The schema is not ours to write nor to copy into the repository: it is the one pytest validates
its own --junitxml output against (testing/example_scripts/junit-10.xsd, Jenkins' xunit
schema, MIT licensed), taken at test time from pytest's source distribution on PyPI for the
pytest version installed (pip checks the archive's hash against the index), and kept in
pytest's cache.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile

import pytest
import xmlschema

XSD_MEMBER = "testing/example_scripts/junit-10.xsd"


def junit_schema(
    config: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> xmlschema.XMLSchema:
    """pytest's JUnit schema, from its sdist on PyPI (module docstring). Test modules wrap it
    in a session fixture of their own:

        @pytest.fixture(scope="session")
        def schema(pytestconfig, tmp_path_factory):
            return junit_schema(pytestconfig, tmp_path_factory)
    """
    cache = config.cache
    folder = cache.mkdir("junit-schema") if cache is not None else tmp_path_factory.mktemp("xsd")
    xsd = folder / f"pytest-{pytest.__version__}-junit-10.xsd"
    if not xsd.is_file():
        download = folder / "sdist"
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", f"pytest=={pytest.__version__}", "-d", str(download)),
            ],
            check=True,
            timeout=300,
            capture_output=True,
        )
        (archive,) = download.glob("pytest-*.tar.gz")
        with tarfile.open(archive) as sdist:
            member = sdist.extractfile(f"{archive.name.removesuffix('.tar.gz')}/{XSD_MEMBER}")
            assert member is not None
            xsd.write_bytes(member.read())
    return xmlschema.XMLSchema(str(xsd))
