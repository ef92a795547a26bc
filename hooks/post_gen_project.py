"""Remove what the answers did not select, then make the first git commit.

Needs neither the network nor DVC: the DVC config is a plain file of the template.
"""

import shutil
import subprocess  # nosec B404 - runs git with fixed arguments
from pathlib import Path

CI_PROVIDER = "{{ cookiecutter.ci_provider }}"
TRACKING = "{{ cookiecutter.tracking }}"

# What each answer removes.
REMOVE = {
    ("ci_provider", "github"): [".gitlab-ci.yml"],
    ("ci_provider", "gitlab"): [".github"],
    ("ci_provider", "none"): [".gitlab-ci.yml", ".github"],
    ("tracking", "local"): ["deploy", "docs/team-stack.md", ".env.example"],
    ("tracking", "server"): [],
}


def remove(relpath):
    path = Path(relpath)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)  # nosec B603 B607


def first_commit():
    if shutil.which("git") is None:
        print("git is not installed: run 'git init' and commit when it is.")
        return
    if git("init", "--quiet", "--initial-branch=main").returncode != 0:
        git("init", "--quiet")
    git("add", "--all")
    if not (git("config", "user.name").stdout.strip() and git("config", "user.email").stdout.strip()):
        print("git has no user.name/user.email: files are staged; set them and run 'git commit'.")
        return
    done = git("commit", "--quiet", "--no-verify", "-m", "Initial commit from the secure ML template")
    if done.returncode == 0:
        print("Created a git repository with the first commit.")
    else:
        print(f"git commit failed ({done.stderr.strip()}); files are staged, commit them yourself.")


if __name__ == "__main__":
    for path in REMOVE[("ci_provider", CI_PROVIDER)] + REMOVE[("tracking", TRACKING)]:
        remove(path)
    first_commit()
