"""setup.cfg's package list, as setuptools reads it: every folder that ships files is a
package of its own, so a build says nothing alarming on a new machine.

With ``packages = find:`` the folders without ``__init__.py`` that hold the pages
(``shenava/http/static``) and the test PBX's audio (``testpbx/audio``) were left out,
and every ``scripts/bootstrap`` printed a screenful of setuptools' "Package would be
ignored" warnings per folder; their files still shipped, through ``package_data``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools.config.setupcfg import read_configuration

ROOT = Path(__file__).resolve().parent.parent


def test_every_folder_that_ships_files_is_a_listed_package() -> None:
    options = read_configuration(str(ROOT / "setup.cfg"))["options"]
    packages = set(options["packages"])
    roots = {name.split(".")[0] for name in packages}
    assert {"shenava", "testpbx", "complaints", "ami_bridge"} <= roots
    for folder, wanted in (("shenava/http/static", "wallboard.html"), ("testpbx/audio", None)):
        assert folder.replace("/", ".") in packages, folder
        if wanted:
            assert (ROOT / folder / wanted).is_file()
    for root in roots:
        for folder in (ROOT / root).rglob("*"):
            if not folder.is_dir() or folder.name == "__pycache__" or "__pycache__" in folder.parts:
                continue
            if any(f.is_file() for f in folder.iterdir()):
                name = ".".join(folder.relative_to(ROOT).parts)
                assert name in packages, f"{name} ships files but is not a package in setup.cfg"
    # a folder of caches is never one
    assert not any("__pycache__" in name for name in packages)
