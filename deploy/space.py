"""Put this checkout on a Hugging Face Space with the Hub's own client, not git:

    pip install huggingface_hub && hf auth login      # a token with write access
    python deploy/space.py USER/NAME                   # creates the Docker Space if needed, uploads
    python deploy/space.py USER/NAME --static site/    # or the pad alone: a static Space (free)

It uploads the files git tracks (no history, no local data, models or databases) in one commit.
The Hub stores the binary ones (the shipped checkpoint, the screenshots) in its large-file
storage by itself; a `git push` to the Space would be refused for them without git-lfs and a
.gitattributes (README). Our own repository keeps them as plain git blobs.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tracked_files(folder: Path = REPO) -> list[str]:
    """What the Space gets: the committed files, as a clean clone has them."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=folder, check=True, capture_output=True)
    return sorted(name for name in listed.stdout.decode().split("\0") if name)


def site_files(folder: Path) -> list[str]:
    """What a static Space gets: the folder `python -m mlp_demo web OUT/` wrote."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file())


def upload(space: str, folder: Path = REPO, sdk: str = "docker") -> str:
    from huggingface_hub import CommitOperationAdd, HfApi  # the deployer's tool, not the app's

    api = HfApi()
    api.create_repo(space, repo_type="space", space_sdk=sdk, exist_ok=True)
    names = site_files(folder) if sdk == "static" else tracked_files(folder)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
                  for name in names]
    info = api.create_commit(space, operations, repo_type="space",
                             commit_message="Upload mlp_demo with deploy/space.py")
    return info.commit_url


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", help="the Space's id, USER/NAME")
    parser.add_argument("--static", type=Path, metavar="SITE",
                        help="upload this static site (python -m mlp_demo web SITE) as a static Space")
    args = parser.parse_args(argv)
    print(upload(args.space, args.static, "static") if args.static else upload(args.space))


if __name__ == "__main__":
    main()
