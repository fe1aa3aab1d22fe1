"""manage.py import_volume PATH --project NAME [...]"""

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Volume


def _run(*args):
    from io import StringIO

    out = StringIO()
    call_command("import_volume", *map(str, args), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_imports_and_prints_the_id(project, tiff_3d, ivy):
    out = _run(tiff_3d, "--project", "Nuclei 101", "--name", "from the shell", "--user", "ivy",
               "--voxel-size", "3", "0.25", "0.25")
    volume = Volume.objects.get()
    assert out.strip() == str(volume.id)
    assert (volume.name, volume.created_by, volume.project) == ("from the shell", ivy, project)
    assert volume.voxel_size == (3.0, 0.25, 0.25)


@pytest.mark.django_db
def test_it_imports_a_channel_of_an_ome_zarr(project, tmp_path, sample_2d, ivy):
    from annotation.storage import VolumeStore

    store = VolumeStore.create(tmp_path / "src.zarr", sample_2d[0], name="src")  # an OME-Zarr image
    _run(store.path, "--project", "Nuclei 101", "--channel", "0")
    assert Volume.objects.get().shape == (1, 300, 300)


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["{missing}", "--project", "Nuclei 101"], "does not exist"),
    (["{tiff}", "--project", "Nope"], "no project named 'Nope'"),
    (["{tiff}", "--project", "Nuclei 101", "--user", "zed"], "no user named 'zed'"),
    (["{tiff}", "--project", "Nuclei 101", "--voxel-size", "0", "1", "1"], "voxel_size"),
    (["{text}", "--project", "Nuclei 101"], "text.tif"),
    (["{tiff}", "--project", "Nuclei 101", "--channel", "3"], "channel"),
])
def test_it_fails_with_one_line(project, tiff_3d, tmp_path, args, message, data_dir):
    text = tmp_path / "text.tif"
    text.write_text("hello")
    args = [a.format(missing=tmp_path / "missing.tif", tiff=tiff_3d, text=text) for a in args]
    with pytest.raises(CommandError) as info:
        _run(*args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not Volume.objects.exists()
    assert not (data_dir / "volumes").exists() or not any((data_dir / "volumes").iterdir())


def test_it_exits_with_status_1_and_one_line_from_the_shell(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "EZQUANT_DATA_DIR": str(tmp_path / "d")}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True)
    result = subprocess.run([sys.executable, "manage.py", "import_volume", str(tmp_path / "x.tif"), "--project", "x"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert result.stdout == "" and result.stderr == "CommandError: no project named 'x'\n"
