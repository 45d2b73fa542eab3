"""The named vocabularies live in the top-level vocab/ folder; a built package carries them as
tagrank/vocabularies/ (tagrank.labels.vocab looks there first, then in a source checkout's vocab/)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

VOCAB = Path(__file__).resolve().parent / "vocab"


class BuildWithVocabularies(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "tagrank" / "vocabularies"
        self.mkpath(str(target))
        for path in sorted(VOCAB.glob("*.txt")):
            self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": BuildWithVocabularies})
