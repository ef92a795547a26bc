"""Remove what the answers did not select, then make the first git commit.

Needs neither the network nor DVC: the DVC config is a plain file of the template. Imports
only `os` and `subprocess`, to start fast: this runs on every generation.
"""

import os
import sys

# Cookiecutter's temporary folder: no modules, many files (see pre_gen_project.py).
if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import subprocess  # nosec B404 - runs git with fixed arguments

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


def remove(path):
    if os.path.isdir(path):
        for folder, _, files in os.walk(path, topdown=False):
            for name in files:
                os.remove(os.path.join(folder, name))
            os.rmdir(folder)
    elif os.path.exists(path):
        os.remove(path)


def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)  # nosec B603 B607


def next_steps():
    """The first commands for the chosen options, printed once after generation."""
    steps = [f"cd {os.getcwd()}", "make setup        # .venv with the hash-pinned lock (needs PyPI)"]
    if TRACKING == "server":
        steps += [
            "make team-env     # .env with new random passwords for the team stack",
            "make team-up      # PostgreSQL, MinIO and the MLflow server (needs docker compose)",
            "make team-check   # the tracking server and the DVC remote accept our credentials",
        ]
    steps += [
        "make pipeline     # prepare -> validate -> train -> evaluate, tracked in MLflow",
        "git add dvc.lock && git commit -m 'First run'   # the run to compare against",
        "make check        # docs, tests, security gates, controls",
    ]
    print("Next steps:\n" + "\n".join("  " + step for step in steps))


def first_commit():
    try:
        if git("init", "--quiet", "--initial-branch=main").returncode != 0:
            git("init", "--quiet")  # git older than 2.28
    except FileNotFoundError:
        print("git is not installed: run 'git init' and commit when it is.")
        return
    # One lightly compressed pack instead of a file per object (for this command only):
    # the first commit takes a third of the time.
    git("-c", "core.bigFileThreshold=1", "-c", "pack.compression=1", "add", "--all")
    lines = git("config", "--get-regexp", r"^user\.(name|email)$").stdout.splitlines()
    identity = {key for key, _, value in (line.partition(" ") for line in lines) if value.strip()}
    if identity != {"user.name", "user.email"}:
        print("git has no user.name/user.email: files are staged; set them and run 'git commit'.")
        return
    done = git("-c", "maintenance.auto=false", "commit", "--quiet", "--no-verify",
               "-m", "Initial commit from the secure ML template")
    if done.returncode == 0:
        print("Created a git repository with the first commit.")
    else:
        print(f"git commit failed ({done.stderr.strip()}); files are staged, commit them yourself.")


if __name__ == "__main__":
    for path in REMOVE[("ci_provider", CI_PROVIDER)] + REMOVE[("tracking", TRACKING)]:
        remove(path)
    first_commit()
    next_steps()
